"""Predictions from the API side: store the row (durable before any answer), then either answer at
once (async) or wait for a worker to finish it (sync). The API never runs a model."""

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import Conflict, DomainError, Unprocessable, not_found
from app.core.metrics import PREDICTIONS
from app.db.base import utcnow
from app.db.notifier import Notifier
from app.models.deployment import Deployment, DeploymentStatus
from app.models.prediction import Prediction, PredictionStatus
from app.services import audit, prediction_states
from app.services.pagination import Page, paginate
from app.services.tenancy import Scoped
from app.services.webhooks.urls import checked_callback
from app.services.worker_heartbeats import Liveness

IDEMPOTENCY_WINDOW = timedelta(hours=24)
POLL_SECONDS = 0.25
# Where NOTIFY wakes waiters, the poll only covers a lost notification.
NOTIFIED_POLL_SECONDS = 1.0


class ModelUnavailable(DomainError):
    """The workers found they cannot serve this deployment's model: fail now, saying why."""

    status_code = 503
    default_code = "model_unavailable"


class NoWorker(DomainError):
    """Nothing would run a synchronous prediction: say so instead of waiting in silence."""

    status_code = 503
    default_code = "no_worker"


class PredictionPending(DomainError):
    status_code = 400
    default_code = "prediction_pending"
    default_message = "Prediction is still being processed."


@dataclass(frozen=True, slots=True)
class Submitted:
    prediction: Prediction
    replayed: bool
    # Live workers that run its model when it was accepted (0: it waits for one to start).
    workers: int = 1


def options_within(
    settings: Settings,
    ttl_seconds: int | None,
    timeout_seconds: int | None,
    callback_url: str | None,
) -> prediction_states.Options:
    """The caller's deadlines, refused (422) beyond the settings' bounds, and callback, refused
    (422 `callback_url_refused`) where the URL guard forbids it."""
    for field, asked, bound in (
        ("ttl_seconds", ttl_seconds, settings.prediction_max_ttl_seconds),
        ("timeout_seconds", timeout_seconds, settings.prediction_max_timeout_seconds),
    ):
        if asked is not None and asked > bound:
            raise Unprocessable(message=f"{field} must be at most {bound}.", field=field)
    callback_url = checked_callback(settings, callback_url)
    return prediction_states.Options(ttl_seconds, timeout_seconds, callback_url)


async def submit(
    db: AsyncSession,
    access: Scoped[Deployment],
    user_id: uuid.UUID,
    text_input: str,
    idempotency_key: str | None,
    liveness: Liveness,
    synchronous: bool,
    owner: prediction_states.Owner | None = None,
    options: prediction_states.Options = prediction_states.NO_OPTIONS,
) -> Submitted:
    """`access` holds the deployment FOR SHARE (`DeploymentForPrediction`): its status is the
    latest committed, and no complete or cancel can slip in before the insert commits. With
    `owner` (a synchronous prediction this process's worker will run) it is inserted claimed."""
    # Plain values, not the ORM row: a rollback below expires every loaded object.
    deployment = access.row
    deployment_id, org_id, model = deployment.id, deployment.organization_id, deployment.model
    status, ready, reason = deployment.status, deployment.serving_ready, deployment.serving_reason
    if options.callback_url is None and deployment.callback_url is not None:
        options = replace(options, callback_url=deployment.callback_url)
    if idempotency_key is not None:
        existing = await _replay(db, user_id, deployment_id, idempotency_key, text_input)
        if existing is not None:
            return Submitted(existing, replayed=True)
    if status != DeploymentStatus.running:
        raise Conflict(
            "deployment_not_running", f"The deployment is {status}; predictions need it running."
        )
    if ready is False:
        raise ModelUnavailable(message=f"The {model!r} model cannot serve: {reason}.")
    workers = await liveness.serving(db, model)
    if workers == 0 and synchronous:
        raise NoWorker(
            message=f"No prediction worker that runs {model!r} is alive; start one with "
            "`mlops worker`, or send `Async-Mode: true` to queue the prediction until one starts."
        )
    try:
        prediction = await prediction_states.enqueue(
            db,
            (deployment_id, org_id, model),
            user_id,
            text_input,
            idempotency_key,
            owner,
            options,
        )
        await db.commit()
    except IntegrityError:
        # A concurrent request with the same key won the unique constraint: replay it.
        await db.rollback()
        if idempotency_key is None:
            raise
        existing = await _replay(db, user_id, deployment_id, idempotency_key, text_input)
        if existing is None:
            raise
        return Submitted(existing, replayed=True)
    return Submitted(prediction, replayed=False, workers=workers)


async def _replay(
    db: AsyncSession, user_id: uuid.UUID, deployment_id: uuid.UUID, key: str, text_input: str
) -> Prediction | None:
    """The earlier prediction under this key, if still within its 24 hours. An older one gives
    its key up, so the key can be used afresh."""
    existing = await db.scalar(
        select(Prediction).where(
            Prediction.created_by == user_id,
            Prediction.deployment_id == deployment_id,
            Prediction.idempotency_key == key,
        )
    )
    if existing is None:
        return None
    if existing.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        await prediction_states.release_idempotency_key(db, existing.id)
        return None
    if existing.input != text_input:
        raise Conflict(
            "idempotency_key_reused", "This Idempotency-Key was used with a different input."
        )
    return existing


async def wait_until_done(
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    prediction_id: uuid.UUID,
    within: float,
) -> Prediction | None:
    """The finished prediction, or None if it is still not done after `within` seconds. Called
    right after the row was committed (queued, or claimed by this process's worker), so it waits
    before it reads: woken by the
    in-process worker (which hands over the row it wrote: no read at all) or by NOTIFY (then
    read); the short poll makes a lost notification cost only latency, never correctness. No
    report can be missed before the first wait: this process handles none until the caller
    awaits, and by then it is watching."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    poll = NOTIFIED_POLL_SECONDS if notifier.enabled else POLL_SECONDS
    with notifier.watching(prediction_id) as watch:
        while True:
            remaining = deadline - loop.time()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.event.wait(), min(remaining, poll))
            if isinstance(watch.outcome, Prediction):
                return watch.outcome
            watch.event.clear()  # before the read: a report from now on wakes the next wait
            async with sessions() as db:
                found = await db.get(Prediction, prediction_id)
            if found is not None and found.status.is_done:
                return found
            if loop.time() >= deadline:
                return None


def done(access: Scoped[Prediction]) -> Prediction:
    """The prediction, if it is finished; polling before then is 400 `prediction_pending`."""
    if not access.row.status.is_done:
        raise PredictionPending()
    return access.row


async def cancel(db: AsyncSession, access: Scoped[Prediction], notifier: Notifier) -> Prediction:
    """Cancel a queued or running prediction (`PredictionForCancel`); one that has finished,
    whichever way, is 409 `prediction_finished`. Against a worker's finish, exactly one wins:
    both writes are guarded on `running`. Announced here at once (a synchronous caller waiting
    in this process, this process's worker running it); NOTIFY tells the others."""
    prediction_id = access.row.id
    cancelled = await prediction_states.cancel(db, prediction_id)
    if cancelled is None:
        status = await db.scalar(select(Prediction.status).where(Prediction.id == prediction_id))
        if status is None:  # deleted meanwhile by the retention job
            raise not_found("prediction")
        raise Conflict("prediction_finished", f"The prediction is already {status}.")
    audit.record(
        db,
        cancelled.organization_id,
        "prediction.cancelled",
        ("prediction", prediction_id),
        after={"deployment_id": str(cancelled.deployment_id)},
    )
    await db.commit()
    PREDICTIONS.labels(cancelled.model, "cancelled").inc()
    notifier.announce_done([prediction_id])
    return cancelled


async def list_for_deployment(
    db: AsyncSession,
    access: Scoped[Deployment],
    status: PredictionStatus | None,
    page: Page,
) -> tuple[list[Prediction], int]:
    stmt = select(Prediction).where(Prediction.deployment_id == access.row.id)
    if status is not None:
        stmt = stmt.where(Prediction.status == status)
    rows, total = await paginate(db, stmt.order_by(Prediction.created_at, Prediction.id), page)
    return [row[0] for row in rows], total
