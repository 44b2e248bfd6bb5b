"""The callback's own states on the prediction row (`webhook_state`, `webhook_next_at`,
`webhook_attempts`) and its log of attempts. Each write is one guarded UPDATE beside the
prediction's own machine (`prediction_states`), whose columns it never writes:

    pending -> pending    lease: a dispatcher takes a finished prediction whose delivery is due
                          (attempt + 1, `webhook_next_at` = when the lease lapses: then it is
                          due again, for whichever dispatcher comes next)
    pending -> delivered  the receiver answered 2xx
    pending -> pending    retry: it did not; the next attempt is due after the backoff
    pending -> failed     the guard refused the address (it would again), or the next attempt
                          would come after the retry window

Whatever finishes a prediction (a worker, its deployment ending, a lost worker, a cancel, a
deadline) needs no hook: a finished row still `pending` is due. The writes after an attempt are
guarded on the attempt number it was leased with, so a dispatcher whose lease lapsed (another took
the next attempt) records its attempt and changes nothing else."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.base import utcnow
from app.models.organization import Organization
from app.models.prediction import FINAL_STATUSES, Prediction, WebhookAttempt, WebhookState
from app.services.pagination import Page, paginate
from app.services.tenancy import Scoped

PENDING, DELIVERED, FAILED = WebhookState.pending, WebhookState.delivered, WebhookState.failed
FINAL = tuple(sorted(FINAL_STATUSES))
# A lease outlasts the attempt (bounded by WEBHOOK_TIMEOUT_SECONDS) by this much, the time to
# record it, before another dispatcher may take the delivery over.
LEASE_MARGIN_SECONDS = 30.0
MAX_DOUBLINGS = 60  # past this the backoff is at its cap anyway; 2**n stays a float

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased delivery: the finished prediction, the number of this attempt, and its
    organization's signing secret as it is now (a rotation applies from the next attempt)."""

    prediction: Prediction
    attempt: int
    secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went: the receiver's status code, or the error that kept it from
    answering; `refused`: the guard refused the address, and would again."""

    url: str
    attempted_at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Schedule:
    """WEBHOOK_BACKOFF_BASE_SECONDS, WEBHOOK_BACKOFF_MAX_SECONDS, WEBHOOK_RETRY_WINDOW_SECONDS."""

    backoff_base: float
    backoff_max: float
    retry_window: timedelta

    @classmethod
    def of(cls, settings: Settings) -> "Schedule":
        return cls(
            settings.webhook_backoff_base_seconds,
            settings.webhook_backoff_max_seconds,
            timedelta(seconds=settings.webhook_retry_window_seconds),
        )

    def backoff(self, attempt: int) -> timedelta:
        """The wait after attempt `attempt` (1-based) failed: base, 2 base, 4 base... capped."""
        doublings = min(attempt - 1, MAX_DOUBLINGS)
        return timedelta(seconds=min(self.backoff_base * 2.0**doublings, self.backoff_max))

    def after(
        self, delivery: Delivery, attempt: Attempt, now: datetime
    ) -> tuple[WebhookState, datetime | None]:
        """The state an attempt leaves the delivery in, and when the next attempt is due."""
        if attempt.delivered:
            return DELIVERED, None
        if attempt.refused:
            return FAILED, None
        due = now + self.backoff(delivery.attempt)
        finished = delivery.prediction.completed_at or now
        if due > finished + self.retry_window:
            return FAILED, None
        return PENDING, due


async def lease_due(sessions: Sessions, limit: int, lease_seconds: float) -> list[Delivery]:
    """Take up to `limit` due deliveries, the predictions that finished first first. Rows another
    dispatcher is leasing are skipped, not waited for."""
    if limit <= 0:
        return []
    now = utcnow()
    due = (
        select(Prediction.id)
        .where(
            Prediction.webhook_state == PENDING,
            Prediction.status.in_(FINAL),
            or_(Prediction.webhook_next_at.is_(None), Prediction.webhook_next_at <= now),
        )
        .order_by(Prediction.completed_at, Prediction.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with sessions() as db:
        leased = (
            await db.scalars(
                update(Prediction)
                .where(
                    Prediction.id.in_(due.scalar_subquery()), Prediction.webhook_state == PENDING
                )
                .values(
                    webhook_next_at=now + timedelta(seconds=lease_seconds),
                    webhook_attempts=Prediction.webhook_attempts + 1,
                )
                .returning(Prediction)
                .execution_options(synchronize_session=False)
            )
        ).all()
        secrets = await _secrets(db, {prediction.organization_id for prediction in leased})
        await db.commit()
    return [Delivery(p, p.webhook_attempts, secrets[p.organization_id]) for p in leased]


async def _secrets(db: AsyncSession, org_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not org_ids:
        return {}
    rows = await db.execute(
        select(Organization.id, Organization.webhook_secret).where(Organization.id.in_(org_ids))
    )
    return dict(rows.all())


async def record(
    sessions: Sessions, delivery: Delivery, attempt: Attempt, schedule: Schedule
) -> WebhookState | None:
    """Log the attempt and move the delivery on (`Schedule.after`); the state it is left in, or
    None if this dispatcher's lease had lapsed (nothing but the log written) or the prediction is
    gone (deleted by the retention job meanwhile: nothing written)."""
    prediction = delivery.prediction
    state, next_at = schedule.after(delivery, attempt, utcnow())
    async with sessions() as db:
        db.add(
            WebhookAttempt(
                prediction_id=prediction.id,
                attempt=delivery.attempt,
                url=attempt.url,
                attempted_at=attempt.attempted_at,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
            )
        )
        try:
            await db.flush()
        except IntegrityError:
            return None
        moved = await db.scalar(
            update(Prediction)
            .where(
                Prediction.id == prediction.id,
                Prediction.webhook_state == PENDING,
                Prediction.webhook_attempts == delivery.attempt,
            )
            .values(webhook_state=state, webhook_next_at=next_at)
            .returning(Prediction.id)
            .execution_options(synchronize_session=False)
        )
        await db.commit()
    return None if moved is None else state


async def list_attempts(
    db: AsyncSession, access: Scoped[Prediction], page: Page
) -> tuple[list[WebhookAttempt], int]:
    """A prediction's attempts, first first (none when it has no callback)."""
    stmt = (
        select(WebhookAttempt)
        .where(WebhookAttempt.prediction_id == access.row.id)
        .order_by(WebhookAttempt.attempt)
    )
    rows, total = await paginate(db, stmt, page)
    return [row[0] for row in rows], total
