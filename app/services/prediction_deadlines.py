"""Prediction deadlines, applied by every worker each second: queued predictions whose ttl passed
expire (claims skip them already, so they never run), running ones past their timeout_seconds
fail with a timeout reason. Any number of workers sweep at once without waiting on each other:
each round locks the rows it ends with SKIP LOCKED, and each transition is guarded
(`prediction_states`), so every prediction ends once."""

from collections.abc import Awaitable, Callable
from datetime import datetime

from app.core.metrics import PREDICTIONS
from app.db.base import utcnow
from app.db.notifier import Notifier
from app.services import prediction_states
from app.services.prediction_states import Ended, Sessions

SWEEP_BATCH = 1000
EndOverdue = Callable[[Sessions, datetime, int], Awaitable[list[Ended]]]


async def sweep(
    sessions: Sessions,
    notifier: Notifier,
    batch: int = SWEEP_BATCH,
    now: datetime | None = None,
) -> tuple[list[Ended], list[Ended]]:
    """One round at `now` (the present unless given), `batch` rows per transaction until none
    is left: the predictions that expired, and those that timed out."""
    now = now or utcnow()
    expired = await _drain(
        prediction_states.expire_overdue, "expired", sessions, notifier, now, batch
    )
    timed_out = await _drain(
        prediction_states.time_out_overdue, "timeout", sessions, notifier, now, batch
    )
    return expired, timed_out


async def _drain(
    end: EndOverdue, label: str, sessions: Sessions, notifier: Notifier, now: datetime, batch: int
) -> list[Ended]:
    """Each batch is counted as soon as it is committed (a worker stopping between two batches
    loses no count), and announced here at once: the waiters, and the worker running one, in
    this process; NOTIFY tells the other processes."""
    ended: list[Ended] = []
    while True:
        found = await end(sessions, now, batch)
        for prediction in found:
            PREDICTIONS.labels(prediction.model, label).inc()
        notifier.announce_done(prediction.id for prediction in found)
        ended += found
        if len(found) < batch:
            return ended
