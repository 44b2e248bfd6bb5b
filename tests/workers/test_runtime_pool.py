"""The worker's runtime pool and micro-batcher: unloading never strands a caller."""

import asyncio
import uuid
from typing import Any

import pytest

from app.core.config import Settings
from app.runtimes.base import Health, RuntimeFailure
from app.runtimes.batching import MicroBatcher
from app.workers import runtime_pool
from app.workers.runtime_pool import RuntimePool


class SlowBatchable:
    batchable = True

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.unloaded = False

    async def load(self) -> None:
        return None

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        await self.release.wait()
        return [{"echo": text} for text in inputs]

    async def unload(self) -> None:
        self.unloaded = True

    async def health(self) -> Health:
        return Health(True)


async def test_closing_a_batcher_fails_waiting_and_running_callers() -> None:
    batcher = MicroBatcher(SlowBatchable(), max_size=2, max_wait_ms=1)
    calls = [asyncio.create_task(batcher.submit(f"t{i}")) for i in range(5)]
    await asyncio.sleep(0.05)  # the first batch is running, the rest wait
    await batcher.close()
    for call in calls:
        with pytest.raises(RuntimeFailure, match="unloaded"):
            await call


async def test_a_model_in_use_is_not_unloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = SlowBatchable()
    monkeypatch.setattr(runtime_pool, "build_runtime", lambda model, settings: runtime)
    pool = RuntimePool(Settings(_env_file=None))  # type: ignore[call-arg]
    first, second = uuid.uuid4(), uuid.uuid4()
    call = asyncio.create_task(pool.run("distilbert-sst2", first, "x"))
    await asyncio.sleep(0.05)
    # The database said `first` stopped; `second` started using the model meanwhile (not asked).
    pool._users["distilbert-sst2"].add(second)
    await pool.release_stopped({first}, set())
    assert not runtime.unloaded
    assert pool.deployment_ids() == [second]
    await pool.release_stopped({second}, set())
    assert not runtime.unloaded, "a call is still in progress"
    runtime.release.set()
    assert await call == {"echo": "x"}
    await pool.release_stopped({second}, set())
    assert runtime.unloaded
