"""The SQL of the prediction queue beside its transitions: the statements that
`app.services.prediction_states` runs (built once), and the reads of the queue (what the worker
and the metrics ask). Every write of a prediction row goes through `prediction_states`,
`prediction_upkeep` or (its callback's columns only) `webhooks.deliveries`."""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Interval,
    Select,
    String,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import ReturningUpdate

from app.db.base import utcnow
from app.db.notifier import QUEUED_CHANNEL
from app.models.deployment import HOLDING, Deployment
from app.models.prediction import Prediction, PredictionStatus

Sessions = async_sessionmaker[AsyncSession]


def _enqueue_statements() -> tuple[Insert, Select[tuple[str]]]:
    """The insert of a queued prediction (its columns bound by name), and on PostgreSQL the same
    insert with the workers' wake-up: one statement, one round trip (delivered at commit)."""
    columns = Prediction.__table__.c
    inserted = insert(Prediction).values(
        {name: bindparam(name, type_=columns[name].type) for name in ENQUEUED_COLUMNS}
    )
    notified = select(func.pg_notify(QUEUED_CHANNEL, "")).select_from(
        inserted.returning(columns.id).cte("inserted")
    )
    return inserted, notified


# What a new prediction sets; the rest (output, error, completion) start NULL.
ENQUEUED_COLUMNS = (
    "id", "organization_id", "deployment_id", "created_by", "model", "input", "status",
    "idempotency_key", "attempts", "worker_id", "started_at", "lease_expires_at", "created_at",
    "expires_at", "timeout_seconds", "callback_url", "webhook_state", "webhook_attempts",
)  # fmt: skip
ENQUEUE, ENQUEUE_NOTIFIED = _enqueue_statements()


# PostgreSQL: a batch of outcomes in one statement. The rows still running under this worker are
# locked in id order first (like every other multi-row writer, so two transactions never wait in
# a cycle); the UPDATE's guard is evaluated again on each row's latest version; each row written
# announces itself on `prediction_done` (delivered at commit).
FINISH_BATCH = text(
    """
WITH outcome AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),
        CAST(:outputs AS text[]), CAST(:errors AS text[])) AS o(id, status, output, error)
), locked AS (
    SELECT p.id FROM predictions p JOIN outcome o ON o.id = p.id
    WHERE p.status = 'running' AND p.worker_id = :worker_id
    ORDER BY p.id FOR UPDATE OF p
), finished AS (
    UPDATE predictions p
    SET status = o.status, output = CAST(o.output AS json), error = o.error,
        completed_at = :now, lease_expires_at = NULL
    FROM outcome o
    WHERE p.id = o.id AND p.id IN (SELECT id FROM locked)
        AND p.status = 'running' AND p.worker_id = :worker_id
    RETURNING p.*
)
SELECT f.* FROM finished f, LATERAL (SELECT pg_notify('prediction_done', CAST(f.id AS text))) n
"""
)


@dataclass(frozen=True, slots=True)
class Overdue:
    """The rows past a deadline (`where`), and the order to end them in: the longest overdue
    first."""

    where: list[ColumnElement[bool]]
    oldest_first: InstrumentedAttribute[datetime | None]


Deadline = Callable[[str, datetime], Overdue]  # (dialect name, now) -> the rows past it


def ttl_passed(dialect: str, now: datetime) -> Overdue:
    """Queued rows whose ttl passed by `now`."""
    where = [Prediction.status == PredictionStatus.queued, Prediction.expires_at <= now]
    return Overdue(where, Prediction.expires_at)


def timeout_passed(dialect: str, now: datetime) -> Overdue:
    """Running rows that had run longer than their timeout_seconds by `now`, in the date
    arithmetic each database has: an interval on PostgreSQL, Julian days on SQLite (which keeps
    datetimes as text)."""
    at = literal(now, Prediction.started_at.type)
    if dialect == "postgresql":
        second = literal_column("interval '1 second'", Interval())
        past = Prediction.started_at <= at - Prediction.timeout_seconds * second
    else:
        days = Prediction.timeout_seconds / 86400.0
        past = func.julianday(Prediction.started_at) <= func.julianday(at) - days
    where = [Prediction.status == PredictionStatus.running, Prediction.timeout_seconds.is_not(None)]
    return Overdue([*where, past], Prediction.started_at)


TIMEOUT_ERROR = (
    literal("timed out after ") + cast(Prediction.timeout_seconds, String) + " s (timeout_seconds)"
)


def end_overdue(
    overdue: Overdue, values: Mapping[str, Any], batch: int
) -> ReturningUpdate[uuid.UUID, str]:
    """Write `values` to up to `batch` overdue rows, returning (id, model) of each. The rows are
    locked with SKIP LOCKED first (one another sweeper, a cancel or a finish holds is left to
    them: several workers sweep at once without waiting on each other), then written under the
    same condition, evaluated again on each row's latest version: a row that changed meanwhile
    (requeued and claimed afresh, say) is not ended on a stale read."""
    due = (
        select(Prediction.id)
        .where(*overdue.where)
        .order_by(overdue.oldest_first)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    return (
        update(Prediction)
        .where(Prediction.id.in_(due.scalar_subquery()), *overdue.where)
        .values(dict(values))
        .returning(Prediction.id, Prediction.model)
        .execution_options(synchronize_session=False)
    )


async def running_deployments(
    sessions: Sessions, deployment_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Those still holding resources: running, or preempting (their predictions may finish)."""
    async with sessions() as db:
        rows = await db.scalars(
            select(Deployment.id).where(
                Deployment.id.in_(deployment_ids), Deployment.status.in_(HOLDING)
            )
        )
        return set(rows)


async def queue_depth(db: AsyncSession) -> tuple[int, float]:
    """How many predictions are queued, and how long the oldest of them has waited (seconds)."""
    depth, oldest = (
        await db.execute(
            select(func.count(), func.min(Prediction.created_at)).where(
                Prediction.status == PredictionStatus.queued
            )
        )
    ).one()
    waited = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return depth or 0, max(0.0, waited)
