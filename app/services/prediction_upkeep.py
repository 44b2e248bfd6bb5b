"""The workers' upkeep of the prediction queue: the leases of the rows they run, the rows of a
worker that stopped renewing, their own rows at a clean shutdown, and the retention of finished
rows. Each write is one guarded UPDATE (or DELETE) like those of `prediction_states`, whose state
machine this completes."""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import case, delete, or_, select, update

from app.db.base import utcnow
from app.db.notifier import notify_done
from app.models.prediction import FINAL_STATUSES, Prediction, WebhookState
from app.services.prediction_states import FAILED, QUEUED, RUNNING, Sessions

MAX_ATTEMPTS = 2  # the first claim, and one retry after a worker died holding the row
LOST_WORKER = "the worker running this prediction stopped twice; not retried again"
PENDING = WebhookState.pending


async def renew_leases(sessions: Sessions, worker_id: str, lease: float) -> set[uuid.UUID]:
    """Renew the leases of the rows this worker runs, and say which rows it still runs. Rows
    locked right now are skipped, not waited for: waiting could deadlock with this worker's own
    `finish`, and a row being finished needs no longer lease. They are still in the answer (as
    last committed), so that only a row that has left `running` under this worker (cancelled,
    timed out, failed with its deployment, taken over after a lapsed lease) is missing from it."""
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
        still_running = set(
            await db.scalars(
                select(Prediction.id).where(
                    Prediction.worker_id == worker_id, Prediction.status == RUNNING
                )
            )
        )
        await db.commit()
    return still_running


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
                    # It started: its ttl ("not started by then") was met, and must not expire
                    # it now that it waits again.
                    expires_at=None,
                )
                .returning(Prediction.id, Prediction.status)
                .execution_options(synchronize_session=False)
            )
        ).all()
        await db.run_sync(notify_done, [row[0] for row in rows if row[1] == FAILED])
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
                expires_at=None,  # it started, so its ttl was met (as in recover_expired)
            )
            .execution_options(synchronize_session=False)
        )
        await db.commit()


PRUNE_BATCH = 1000


async def prune_finished(sessions: Sessions, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete up to `batch` predictions that finished (in any final state) before `before`, the
    oldest first, and say how many: one short transaction, so that intake and claims wait for a
    batch at most. Rows another worker is deleting at the same moment are skipped, not waited for.
    Queued and running predictions are never touched, however old."""
    oldest_finished = (
        select(Prediction.id)
        .where(
            Prediction.status.in_(FINAL_STATUSES),
            Prediction.completed_at < before,
            # A callback still being retried keeps its row until it is delivered or given up.
            or_(Prediction.webhook_state.is_(None), Prediction.webhook_state != PENDING),
        )
        .order_by(Prediction.completed_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    async with sessions() as db:
        deleted = await db.execute(
            delete(Prediction)
            .where(Prediction.id.in_(oldest_finished.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        await db.commit()
    return int(getattr(deleted, "rowcount", 0) or 0)
