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
        self.batches: list[list[str]] = []

    async def load(self) -> None:
        return None

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        self.batches.append(inputs)
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


async def test_callers_that_stop_waiting_leave_their_batch_to_the_others() -> None:
    """A cancelled prediction's caller stops waiting, in a batch already in the model or one
    still gathering: the others get their outputs, and an input nobody waits for any more is not
    sent to the model."""
    runtime = SlowBatchable()
    batcher = MicroBatcher(runtime, max_size=4, max_wait_ms=1)
    in_model = [asyncio.create_task(batcher.submit(f"m{i}")) for i in range(2)]
    await asyncio.sleep(0.05)  # their batch is in the model
    waiting = [asyncio.create_task(batcher.submit(f"w{i}")) for i in range(2)]
    await asyncio.sleep(0.01)  # queued behind it
    in_model[0].cancel()
    waiting[0].cancel()
    runtime.release.set()
    assert await in_model[1] == {"echo": "m1"}
    assert await waiting[1] == {"echo": "w1"}
    for call in (in_model[0], waiting[0]):
        with pytest.raises(asyncio.CancelledError):
            await call
    assert runtime.batches == [["m0", "m1"], ["w1"]]
    await batcher.close()


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
