"""Workers of their own in the test process: each with its own engine, sessions and notification
listener, as a standalone `mlops worker` has (what one hears, another does not)."""

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from app.core.config import Settings
from app.db.notifier import Notifier
from app.db.session import create_engine, create_sessionmaker
from app.runtimes.mock import MockRuntime
from app.workers.worker import Worker


@asynccontextmanager
async def standalone_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A started worker on `settings.database_url`, stopped (its rows handed back) at the end."""
    engine = create_engine(settings.database_url)
    notifier = Notifier(settings.database_url)
    worker = Worker(settings, create_sessionmaker(engine), notifier)
    await notifier.start()
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        await notifier.stop()
        await engine.dispose()


def mock_of(worker: Worker) -> MockRuntime | None:
    """The worker's mock runtime, once it has loaded it."""
    runtime = worker.pool.runtimes.get("mock")
    return runtime if isinstance(runtime, MockRuntime) else None


def answering(worker: Worker) -> int:
    """How many inputs the worker's mock model is answering now."""
    runtime = mock_of(worker)
    return 0 if runtime is None else runtime.answering


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within: float = 20, what: str = "it"
) -> None:
    """Wait until `check()` (plain or awaitable) is true, at most `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"{what} never came true"
        await asyncio.sleep(0.05)
