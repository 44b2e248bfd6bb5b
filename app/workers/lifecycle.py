"""What runs beside the API in one process: the notification listener (always, for synchronous
predictions) and, unless WORKER_IN_PROCESS=false, one prediction worker."""

from fastapi import FastAPI

from app.core.config import Settings
from app.db.notifier import Notifier
from app.workers.worker import Worker


def attach(app: FastAPI, settings: Settings) -> None:
    app.state.notifier = Notifier(settings.database_url)
    app.state.worker = (
        Worker(settings, app.state.sessionmaker, app.state.notifier)
        if settings.worker_in_process
        else None
    )


async def start(app: FastAPI) -> None:
    await app.state.notifier.start()
    if app.state.worker is not None:
        await app.state.worker.start()


async def stop(app: FastAPI) -> None:
    if app.state.worker is not None:
        await app.state.worker.stop()
    await app.state.notifier.stop()
