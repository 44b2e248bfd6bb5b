"""The durable queue's operations. Every transition of a prediction row is one guarded UPDATE, so
a row is claimed by one worker at a time and completed at most once, whatever crashes."""

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.models.deployment import Deployment, DeploymentStatus
from app.models.prediction import Prediction, PredictionStatus
from app.workers.notifier import NOTIFY_DONE

QUEUED, RUNNING = PredictionStatus.queued, PredictionStatus.running
COMPLETED, FAILED = PredictionStatus.completed, PredictionStatus.failed
MAX_ATTEMPTS = 2  # the first claim, and one retry after a worker died holding the row
LOST_WORKER = "the worker running this prediction stopped twice; not retried again"
DEPLOYMENT_ENDED = "deployment ended"

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    deployment_id: uuid.UUID
    model: str
    input: str


async def notify_done(db: AsyncSession, ids: list[uuid.UUID]) -> None:
    """Queue a NOTIFY per finished prediction; PostgreSQL delivers them at commit."""
    if ids and db.get_bind().dialect.name == "postgresql":
        await db.execute(NOTIFY_DONE, {"ids": [str(i) for i in ids]})


async def claim(
    sessions: Sessions,
    worker_id: str,
    limit: int,
    lease: float,
    models: Collection[str] | None = None,
) -> list[Claimed]:
    """Take up to `limit` queued predictions of running deployments, oldest first, of `models`
    only if given (a worker pool that cannot load the others). Rows another worker is claiming
    are skipped, not waited for; predictions of pending (preempted) deployments stay queued until
    their deployment runs again."""
    if limit <= 0:
        return []
    now = utcnow()
    async with sessions() as db:
        candidates = (
            select(Prediction.id)
            .join(Deployment, Deployment.id == Prediction.deployment_id)
            .where(Prediction.status == QUEUED, Deployment.status == DeploymentStatus.running)
            .order_by(Prediction.created_at, Prediction.id)
            .limit(limit)
            .with_for_update(of=Prediction, skip_locked=True)
        )
        if models is not None:
            candidates = candidates.where(Prediction.model.in_(models))
        rows = await db.execute(
            update(Prediction)
            .where(Prediction.id.in_(candidates.scalar_subquery()))
            .values(
                status=RUNNING,
                attempts=Prediction.attempts + 1,
                worker_id=worker_id,
                started_at=now,
                lease_expires_at=now + timedelta(seconds=lease),
            )
            .returning(Prediction.id, Prediction.deployment_id, Prediction.model, Prediction.input)
            .execution_options(synchronize_session=False)
        )
        claimed = [Claimed(*row) for row in rows]
        await db.commit()
    claimed.sort(key=lambda c: str(c.id))
    return claimed


async def finish(
    sessions: Sessions,
    worker_id: str,
    outcomes: list[tuple[uuid.UUID, str, dict[str, Any] | None, str | None]],
) -> list[uuid.UUID]:
    """Record (id, output, error) outcomes; returns the ids this worker still owned. A row that
    was failed meanwhile (its deployment ended) or taken over after a lost lease is left alone."""
    now = utcnow()
    recorded: list[uuid.UUID] = []
    async with sessions() as db:
        # In id order, like every other multi-row writer, so two transactions never wait in a cycle.
        for prediction_id, _model, output, error in sorted(outcomes, key=lambda o: str(o[0])):
            result = await db.execute(
                update(Prediction)
                .where(
                    Prediction.id == prediction_id,
                    Prediction.status == RUNNING,
                    Prediction.worker_id == worker_id,
                )
                .values(
                    status=COMPLETED if error is None else FAILED,
                    output=output,
                    error=error,
                    completed_at=now,
                    lease_expires_at=None,
                )
                .returning(Prediction.id)
                .execution_options(synchronize_session=False)
            )
            if result.first() is not None:
                recorded.append(prediction_id)
        await notify_done(db, recorded)
        await db.commit()
    return recorded


async def renew_leases(sessions: Sessions, worker_id: str, lease: float) -> None:
    """Rows locked right now (being finished) are skipped, not waited for: waiting could deadlock
    with this worker's own `finish`, and a row being finished needs no longer lease."""
    held = (
        select(Prediction.id)
        .where(Prediction.worker_id == worker_id, Prediction.status == RUNNING)
        .with_for_update(skip_locked=True)
    )
    async with sessions() as db:
        await db.execute(
            update(Prediction)
            .where(Prediction.id.in_(held.scalar_subquery()))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease))
            .execution_options(synchronize_session=False)
        )
        await db.commit()


async def recover_expired(sessions: Sessions) -> int:
    """Rows whose worker stopped renewing go back to the queue once, then fail with a reason."""
    now = utcnow()
    spent = Prediction.attempts >= MAX_ATTEMPTS
    async with sessions() as db:
        rows = (
            await db.execute(
                update(Prediction)
                .where(Prediction.status == RUNNING, Prediction.lease_expires_at < now)
                .values(
                    status=case((spent, FAILED), else_=QUEUED),
                    error=case((spent, LOST_WORKER), else_=None),
                    completed_at=case((spent, now), else_=None),
                    worker_id=None,
                    lease_expires_at=None,
                )
                .returning(Prediction.id, Prediction.status)
                .execution_options(synchronize_session=False)
            )
        ).all()
        await notify_done(db, [row[0] for row in rows if row[1] == FAILED])
        await db.commit()
    return len(rows)


async def release_own(sessions: Sessions, worker_id: str) -> None:
    """On a clean shutdown, hand unfinished rows back without spending their retry."""
    async with sessions() as db:
        await db.execute(
            update(Prediction)
            .where(Prediction.worker_id == worker_id, Prediction.status == RUNNING)
            .values(
                status=QUEUED,
                attempts=Prediction.attempts - 1,
                worker_id=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        await db.commit()


async def running_deployments(
    sessions: Sessions, deployment_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    async with sessions() as db:
        rows = await db.scalars(
            select(Deployment.id).where(
                Deployment.id.in_(deployment_ids), Deployment.status == DeploymentStatus.running
            )
        )
        return set(rows)


async def queue_depth(db: AsyncSession) -> int:
    depth = await db.scalar(
        select(func.count()).select_from(Prediction).where(Prediction.status == QUEUED)
    )
    return depth or 0
