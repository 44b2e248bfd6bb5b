"""The runtimes a worker holds: loaded when a deployment first needs one, released when no running
deployment uses it any more (model memory lives only in workers, and only while needed)."""

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from app.core.config import Settings
from app.runtimes.base import Health, Runtime, RuntimeFailure
from app.runtimes.batching import MicroBatcher
from app.runtimes.catalog import build_runtime

logger = logging.getLogger(__name__)


class RuntimePool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtimes: dict[str, Runtime] = {}
        self._batchers: dict[str, MicroBatcher] = {}
        self._users: dict[str, set[uuid.UUID]] = {}
        self._busy: dict[str, int] = {}  # calls in progress per model: never unload under them
        self._lock = asyncio.Lock()

    async def _acquire(self, model: str, deployment_ids: Iterable[uuid.UUID]) -> Runtime:
        runtime = self.runtimes.get(model)
        if runtime is None:
            async with self._lock:
                runtime = self.runtimes.get(model)
                if runtime is None:
                    runtime = await self._load(model)
        self._users.setdefault(model, set()).update(deployment_ids)
        return runtime

    async def _load(self, model: str) -> Runtime:
        """A failure is not cached (the next call retries) and says what to do: the runtime's
        own health check explains better than the exception of a failed load."""
        runtime = build_runtime(model, self.settings)
        try:
            await runtime.load()
        except RuntimeFailure as exc:
            health = await runtime.health()
            await runtime.unload()
            raise RuntimeFailure(health.detail or str(exc)) from exc
        self.runtimes[model] = runtime
        logger.info("runtime loaded", extra={"model": model})
        return runtime

    async def readiness(self, model: str, deployment_ids: Iterable[uuid.UUID]) -> Health:
        """Can this worker serve `model` for these running deployments? Loads it if need be (a
        running deployment needs its model), then asks the runtime."""
        try:
            runtime = await self._acquire(model, deployment_ids)
        except RuntimeFailure as exc:
            return Health(False, str(exc))
        return await runtime.health()

    async def run(self, model: str, deployment_id: uuid.UUID, text: str) -> dict[str, Any]:
        self._busy[model] = self._busy.get(model, 0) + 1
        try:
            return await self._run(model, deployment_id, text)
        finally:
            self._busy[model] -= 1

    async def _run(self, model: str, deployment_id: uuid.UUID, text: str) -> dict[str, Any]:
        runtime = await self._acquire(model, (deployment_id,))
        if runtime.batchable:
            batcher = self._batchers.get(model)
            if batcher is None:
                batcher = self._batchers[model] = MicroBatcher(
                    runtime, self.settings.batch_max_size, self.settings.batch_max_wait_ms
                )
            return await batcher.submit(text)
        return (await runtime.predict_batch([text]))[0]

    def deployment_ids(self) -> list[uuid.UUID]:
        return sorted({d for users in self._users.values() for d in users}, key=str)

    async def release_stopped(self, asked: set[uuid.UUID], still_running: set[uuid.UUID]) -> None:
        """Forget the deployments of `asked` that no longer run (one that started using a model
        while the database was being asked is kept), then unload models nobody uses or calls."""
        stopped = asked - still_running
        for model in list(self._users):
            self._users[model] -= stopped
            if self._users[model] or self._busy.get(model, 0):
                continue
            del self._users[model]
            await self._unload(model)

    async def _unload(self, model: str) -> None:
        batcher = self._batchers.pop(model, None)
        if batcher is not None:
            await batcher.close()
        runtime = self.runtimes.pop(model, None)
        if runtime is not None:
            await runtime.unload()
            logger.info("runtime released", extra={"model": model})

    async def close(self) -> None:
        for model in list(self.runtimes):
            await self._unload(model)
        self._users.clear()
