"""The prediction state machine: every write of a prediction row is here, each transition one
guarded UPDATE (its WHERE names the states it may leave), with the NOTIFY that announces it. So a
row is claimed by one worker at a time and finished at most once, whatever crashes.

    (new)    -> queued      enqueue: the API stores it, durable before any answer
    (new)    -> running     enqueue, claimed: a synchronous prediction that the API process's own
                            worker runs, inserted under that worker's lease (one transaction
                            fewer than queued and then claimed; the same row a claim would make)
    queued   -> running     claim: a worker takes it, under a lease it renews while the model runs
                            (never one whose ttl has passed)
    running  -> completed   finish: the worker that holds it records the output
    running  -> failed      finish (the model failed), or recover (upkeep): its lease lapsed twice
    running  -> queued      recover (upkeep): its lease lapsed once; or release: its worker shut
                            down
    queued   -> failed      end_for_deployments: the deployment completed, was cancelled or failed
    running  -> failed      end_for_deployments, likewise (a worker still running it then finds
                            the row gone from `running` and cannot complete it)
    queued   -> cancelled   cancel: its caller or an admin
    running  -> cancelled   cancel, likewise: the worker running it stops the model, and a result
                            that comes anyway is discarded by finish's guard
    queued   -> expired     expire_overdue: its ttl passed before a worker took it
    running  -> failed      time_out_overdue: it ran longer than its timeout_seconds

completed, failed, cancelled and expired are final. Used by the API's services and by the workers
alike. The workers' upkeep (renewing leases, recovering a lost worker's rows, releasing their own
at shutdown, pruning old rows) is in `app.services.prediction_upkeep`, under the same rules. The
callback's columns (`webhook_*`) have a machine of their own,
`app.services.webhooks.deliveries`, which writes nothing else.
"""

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.notifier import notifies, notify_done
from app.models.deployment import Deployment, DeploymentStatus
from app.models.prediction import Prediction, PredictionStatus, WebhookState
from app.services import prediction_sql
from app.services.prediction_sql import ENQUEUE, ENQUEUE_NOTIFIED, ENQUEUED_COLUMNS, FINISH_BATCH

QUEUED, RUNNING = PredictionStatus.queued, PredictionStatus.running
COMPLETED, FAILED = PredictionStatus.completed, PredictionStatus.failed
CANCELLED, EXPIRED = PredictionStatus.cancelled, PredictionStatus.expired
DEPLOYMENT_ENDED = "deployment ended"

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    deployment_id: uuid.UUID
    model: str
    input: str


@dataclass(frozen=True, slots=True)
class Ended:
    """A prediction that a deadline ended: its id, and its model (for the metrics)."""

    id: uuid.UUID
    model: str


@dataclass(frozen=True, slots=True)
class Options:
    """What a caller may ask of a new prediction beyond its input: deadlines and a callback."""

    ttl_seconds: int | None = None
    timeout_seconds: int | None = None
    callback_url: str | None = None


NO_OPTIONS = Options()


@dataclass(frozen=True, slots=True)
class Owner:
    """The worker that a new prediction is inserted claimed by, and for how long."""

    worker_id: str
    lease_seconds: float


async def enqueue(
    db: AsyncSession,
    deployment: tuple[uuid.UUID, uuid.UUID, str],
    created_by: uuid.UUID,
    text_input: str,
    idempotency_key: str | None,
    owner: Owner | None = None,
    options: Options = NO_OPTIONS,
) -> Prediction:
    """A new prediction of `deployment` (id, organization id, model): queued, the workers woken
    when the caller's transaction commits; or, with `owner`, running under that worker's lease
    (its first attempt), nobody woken. Inserted by a Core statement, not the unit of work (the
    intake's hot path): the row answered is a plain object, not in the session."""
    deployment_id, organization_id, model = deployment
    now = utcnow()
    prediction = Prediction(
        id=uuid.uuid4(),
        organization_id=organization_id,
        deployment_id=deployment_id,
        created_by=created_by,
        model=model,
        input=text_input,
        status=QUEUED,
        idempotency_key=idempotency_key,
        attempts=0,
        worker_id=None,
        started_at=None,
        lease_expires_at=None,
        created_at=now,
        expires_at=None
        if options.ttl_seconds is None
        else now + timedelta(seconds=options.ttl_seconds),
        timeout_seconds=options.timeout_seconds,
        callback_url=options.callback_url,
        webhook_state=None if options.callback_url is None else WebhookState.pending,
        webhook_attempts=0,
    )
    if owner is not None:
        prediction.status, prediction.attempts, prediction.worker_id = RUNNING, 1, owner.worker_id
        prediction.started_at = now
        prediction.lease_expires_at = now + timedelta(seconds=owner.lease_seconds)
    values = {name: getattr(prediction, name) for name in ENQUEUED_COLUMNS}
    conn = await db.connection()
    wake = owner is None and notifies(conn)
    await conn.execute(ENQUEUE_NOTIFIED if wake else ENQUEUE, values)
    return prediction


async def release_idempotency_key(db: AsyncSession, prediction_id: uuid.UUID) -> None:
    """An expired key is given up by its prediction, so that it can be used afresh."""
    await db.execute(
        update(Prediction).where(Prediction.id == prediction_id).values(idempotency_key=None)
    )


def end_for_deployments(session: Session, deployment_ids: list[uuid.UUID], now: datetime) -> None:
    """A deployment that stops running for good takes its unfinished predictions with it: they
    fail now, in the same transaction, and a worker still running one cannot complete it."""
    if not deployment_ids:
        return
    ended = session.scalars(
        update(Prediction)
        .where(
            Prediction.deployment_id.in_(deployment_ids),
            Prediction.status.in_([QUEUED, RUNNING]),
        )
        .values(status=FAILED, error=DEPLOYMENT_ENDED, completed_at=now, lease_expires_at=None)
        .returning(Prediction.id)
        .execution_options(synchronize_session=False)
    ).all()
    notify_done(session, list(ended))


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
    their deployment runs again. One whose ttl has passed is never taken, even before a sweeper
    has expired it."""
    if limit <= 0:
        return []
    now = utcnow()
    async with sessions() as db:
        candidates = (
            select(Prediction.id)
            .join(Deployment, Deployment.id == Prediction.deployment_id)
            .where(
                Prediction.status == QUEUED,
                or_(Prediction.expires_at.is_(None), Prediction.expires_at > now),
                Deployment.status == DeploymentStatus.running,
            )
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
) -> list[Prediction]:
    """Record (id, output, error) outcomes; returns the rows written, those this worker still
    owned. A row that was ended meanwhile (cancelled, timed out, failed with its deployment) or
    taken over after a lost lease is left alone. One statement on PostgreSQL, one per row
    elsewhere."""
    now = utcnow()
    ordered = sorted(outcomes, key=lambda o: str(o[0]))
    async with sessions() as db:
        if notifies(db):
            params = {
                "ids": [o[0] for o in ordered],
                "statuses": [(COMPLETED if o[3] is None else FAILED).value for o in ordered],
                "outputs": [None if o[2] is None else json.dumps(o[2]) for o in ordered],
                "errors": [o[3] for o in ordered],
                "worker_id": worker_id,
                "now": now,
            }
            stmt = select(Prediction).from_statement(FINISH_BATCH)
            recorded = list((await db.scalars(stmt, params)).all())
        else:
            recorded = [
                row
                for prediction_id, _model, output, error in ordered
                if (row := await _finish_one(db, worker_id, prediction_id, output, error, now))
            ]
        await db.commit()
    return recorded


async def _finish_one(
    db: AsyncSession,
    worker_id: str,
    prediction_id: uuid.UUID,
    output: dict[str, Any] | None,
    error: str | None,
    now: datetime,
) -> Prediction | None:
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
        .returning(Prediction)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def cancel(db: AsyncSession, prediction_id: uuid.UUID) -> Prediction | None:
    """A queued or running prediction becomes `cancelled` now, announced when the caller's
    transaction commits (the waiters, and the worker running it, which then stops the model).
    None if it had finished already: then it keeps its state. The row answered is the one in the
    session, refreshed."""
    cancelled = (
        await db.execute(
            update(Prediction)
            .where(Prediction.id == prediction_id, Prediction.status.in_([QUEUED, RUNNING]))
            .values(status=CANCELLED, completed_at=utcnow(), lease_expires_at=None)
            .returning(Prediction)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).scalar_one_or_none()
    if cancelled is not None:
        await db.run_sync(notify_done, [prediction_id])
    return cancelled


async def expire_overdue(sessions: Sessions, now: datetime, batch: int) -> list[Ended]:
    """Up to `batch` queued predictions whose ttl passed by `now` become `expired`: never run."""
    values = {"status": EXPIRED, "completed_at": now}
    return await _end_overdue(sessions, prediction_sql.ttl_passed, now, batch, values)


async def time_out_overdue(sessions: Sessions, now: datetime, batch: int) -> list[Ended]:
    """Up to `batch` running predictions that had run longer than their timeout_seconds by `now`
    fail, saying so; the worker running one stops it once it hears."""
    values = {
        "status": FAILED,
        "error": prediction_sql.TIMEOUT_ERROR,
        "completed_at": now,
        "lease_expires_at": None,
    }
    return await _end_overdue(sessions, prediction_sql.timeout_passed, now, batch, values)


async def _end_overdue(
    sessions: Sessions,
    deadline: prediction_sql.Deadline,
    now: datetime,
    batch: int,
    values: dict[str, Any],
) -> list[Ended]:
    async with sessions() as db:
        overdue = deadline(db.get_bind().dialect.name, now)
        rows = await db.execute(prediction_sql.end_overdue(overdue, values, batch))
        ended = [Ended(*row) for row in rows]
        await db.run_sync(notify_done, [e.id for e in ended])
        await db.commit()
    return ended
