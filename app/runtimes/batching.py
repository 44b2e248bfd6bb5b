"""Micro-batching for batchable runtimes: inputs that arrive within a short window (or until the
batch is full) share one forward pass. A CPU-bound model does far more work per second on a batch
of 32 than on 32 single calls."""

import asyncio
import contextlib
from typing import Any

from app.runtimes.base import Runtime, RuntimeFailure

_Item = tuple[str, asyncio.Future[dict[str, Any]]]


class MicroBatcher:
    def __init__(self, runtime: Runtime, max_size: int, max_wait_ms: float) -> None:
        self.runtime = runtime
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, text: str) -> dict[str, Any]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="micro-batcher")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((text, future))
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._queue.empty():
                self._arrived.clear()
                await self._arrived.wait()
            batch = [self._queue.get_nowait()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                # Waiting on an event, not on queue.get(): a timeout then never loses an item.
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        # A caller that stopped waiting (its prediction was cancelled) has nothing to be answered.
        batch = [(text, future) for text, future in batch if not future.done()]
        if not batch:
            return
        try:
            outputs = await self.runtime.predict_batch([text for text, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeFailure("the model was unloaded"))
            raise
        except Exception as exc:  # the runtime's failure belongs to every caller in the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), output in zip(batch, outputs, strict=True):
            if not future.done():
                future.set_result(output)

    async def close(self) -> None:
        """Stop batching; whoever still waits gets a failure instead of waiting forever."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeFailure("the model was unloaded"))
