"""Which prediction workers are alive: each renews its heartbeat row every few seconds and deletes
it when it stops; one silent for `ALIVE_WITHIN` is dead (its leases lapse too)."""

import os
import socket
import time
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.models.worker import WorkerHeartbeat

HEARTBEAT_SECONDS = 5.0
ALIVE_WITHIN = timedelta(seconds=3 * HEARTBEAT_SECONDS)
# Rows of workers that died without saying so are removed after this long.
FORGET_AFTER = timedelta(days=1)

Sessions = async_sessionmaker[AsyncSession]


async def beat(
    sessions: Sessions, worker_id: str, models: Collection[str] | None, started_at: datetime
) -> None:
    """Renew this worker's heartbeat, writing its row the first time."""
    now = utcnow()
    async with sessions() as db:
        renewed = await db.execute(
            update(WorkerHeartbeat)
            .where(WorkerHeartbeat.id == worker_id)
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        if renewed.rowcount == 0:  # type: ignore[attr-defined]
            db.add(
                WorkerHeartbeat(
                    id=worker_id,
                    hostname=socket.gethostname()[:255],
                    pid=os.getpid(),
                    models=sorted(models) if models is not None else None,
                    started_at=started_at,
                    last_seen_at=now,
                )
            )
        await db.execute(
            delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < now - FORGET_AFTER)
        )
        await db.commit()


async def forget(sessions: Sessions, worker_id: str) -> None:
    async with sessions() as db:
        await db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker_id))
        await db.commit()


async def alive_models(db: AsyncSession) -> list[list[str] | None]:
    """The models of each live worker (None: it runs every model)."""
    cutoff = utcnow() - ALIVE_WITHIN
    rows = await db.scalars(
        select(WorkerHeartbeat.models).where(WorkerHeartbeat.last_seen_at >= cutoff)
    )
    return list(rows)


async def count_alive(db: AsyncSession) -> int:
    cutoff = utcnow() - ALIVE_WITHIN
    found = await db.scalar(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_seen_at >= cutoff)
    )
    return found or 0


def serving(alive: list[list[str] | None], model: str) -> int:
    return sum(1 for models in alive if models is None or model in models)


class Liveness:
    """How many live workers run a model, asked on every predict: a process whose own worker runs
    every model knows at once; others read the heartbeats at most once a second."""

    def __init__(self, in_process_worker: bool, ttl: float = 1.0) -> None:
        self.in_process_worker = in_process_worker
        self.ttl = ttl
        self._alive: list[list[str] | None] = []
        self._read_at = float("-inf")

    async def serving(self, db: AsyncSession, model: str) -> int:
        if self.in_process_worker:
            return 1
        if time.monotonic() - self._read_at > self.ttl:
            self._alive = await alive_models(db)
            self._read_at = time.monotonic()
        return serving(self._alive, model)
