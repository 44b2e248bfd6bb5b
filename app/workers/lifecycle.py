"""What runs beside the API in one process: the notification listener (always, for synchronous
predictions) and, unless WORKER_IN_PROCESS=false, one prediction worker."""

import asyncio
import contextlib
import logging

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.db.migrations import SchemaNotAtHead, require_head
from app.db.notifier import Notifier
from app.services.worker_heartbeats import Liveness
from app.workers.worker import Worker

logger = logging.getLogger(__name__)

SCHEMA_POLL_SECONDS = 2.0


def attach(app: FastAPI, settings: Settings) -> None:
    app.state.notifier = Notifier(settings.database_url)
    app.state.liveness = Liveness(in_process_worker=settings.worker_in_process)
    app.state.worker = (
        Worker(settings, app.state.sessionmaker, app.state.notifier)
        if settings.worker_in_process
        else None
    )
    app.state.worker_start = None


async def start(app: FastAPI) -> None:
    await app.state.notifier.start()
    if app.state.worker is not None:
        app.state.worker_start = asyncio.create_task(_start_when_migrated(app), name="worker-start")


async def _start_when_migrated(app: FastAPI) -> None:
    """`mlops serve --no-migrate` may come up before the migrations have run (a migration Job
    beside it): the worker waits for the schema, saying why once, instead of failing every
    second until it is there."""
    said = False
    while True:
        try:
            await require_head(app.state.engine)
            break
        except (SchemaNotAtHead, SQLAlchemyError, OSError) as exc:
            if not said:
                logger.warning("the prediction worker waits until %s", _why(exc))
                said = True
        await asyncio.sleep(SCHEMA_POLL_SECONDS)
    await app.state.worker.start()


def _why(exc: Exception) -> str:
    if isinstance(exc, SchemaNotAtHead):
        return f"the schema is at head ({exc})"
    return f"the database answers ({type(exc).__name__})"


async def stop(app: FastAPI) -> None:
    starting = app.state.worker_start
    if starting is not None:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    if app.state.worker is not None:
        await app.state.worker.stop()
    await app.state.notifier.stop()
