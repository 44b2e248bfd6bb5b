"""The worker loop: claim queued predictions, run them, record outcomes, keep leases alive, and
stop running a prediction that was ended elsewhere (cancelled, timed out, failed with its
deployment): its result would be discarded anyway."""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.core.metrics import PREDICTION_DURATION, PREDICTIONS
from app.db.base import utcnow
from app.db.notifier import Notifier
from app.db.outage import log_failure
from app.runtimes.base import RuntimeFailure
from app.services import (
    prediction_deadlines,
    prediction_sql,
    prediction_states,
    prediction_upkeep,
    runtime_sweeper,
)
from app.services.prediction_states import Claimed, Sessions
from app.services.worker_heartbeats import HEARTBEAT_SECONDS
from app.workers.runtime_pool import RuntimePool
from app.workers.visibility import SERVING_CHECK_SECONDS, Visibility
from app.workers.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

CLAIM_BATCH = 500
MAX_IN_FLIGHT = 5000  # mock predictions are waits: thousands share one event loop
POLL_SECONDS = 0.5
RELEASE_SECONDS = 2.0
PRUNE_SECONDS = 600.0  # the retention job: at start, then every ten minutes
SWEEP_SECONDS = 1.0  # run deadlines and ends of protection: how late they may be acted on
FINISH_BATCH = 200

Outcome = tuple[uuid.UUID, str, dict[str, Any] | None, str | None]  # id, model, output, error


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessions: Sessions,
        notifier: Notifier,
        models: frozenset[str] | None = None,
    ) -> None:
        """`models`: claim only predictions of these models (None: every model)."""
        self.settings = settings
        self.models = models
        self.sessions = sessions
        self.notifier = notifier
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pool = RuntimePool(settings)
        self.visibility = Visibility(self.id, sessions, self.pool, models)
        self.webhooks = WebhookDispatcher(settings, sessions)
        # The predictions this worker is running the model of, each with its task.
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        lease = self.settings.prediction_lease_seconds
        with contextlib.suppress(SQLAlchemyError, OSError):  # the loop below retries
            await self.visibility.beat()
        self._tasks = [
            asyncio.create_task(
                self._every(HEARTBEAT_SECONDS, self.visibility.beat), name="worker-heartbeat"
            ),
            asyncio.create_task(
                self._every(SERVING_CHECK_SECONDS, self.visibility.check_serving, at_once=True),
                name="worker-serving",
            ),
            asyncio.create_task(self._claim_loop(), name="worker-claim"),
            asyncio.create_task(self._finish_loop(), name="worker-finish"),
            asyncio.create_task(self._every(lease / 3, self._renew), name="worker-leases"),
            asyncio.create_task(self._every(lease / 2, self._recover), name="worker-recovery"),
            asyncio.create_task(self._every(RELEASE_SECONDS, self._release), name="worker-release"),
            asyncio.create_task(self._every(SWEEP_SECONDS, self._sweep), name="worker-sweeper"),
            asyncio.create_task(self.webhooks.run(), name="worker-webhooks"),
            asyncio.create_task(
                self._every(SWEEP_SECONDS, self._end_overdue), name="worker-deadlines"
            ),
        ]
        self.notifier.add_done_listener(self.abandon)
        if self.settings.prediction_retention_days > 0:
            self._tasks.append(
                asyncio.create_task(
                    self._every(PRUNE_SECONDS, self.prune, at_once=True), name="worker-retention"
                )
            )

    async def stop(self) -> None:
        """Stop claiming, hand unfinished rows back (their retry is not spent), unload models."""
        self.notifier.remove_done_listener(self.abandon)
        running = [*self._tasks, *self._in_flight.values()]
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []  # stopped: `owns_next` hands it nothing more
        with contextlib.suppress(SQLAlchemyError, OSError):
            while not self._outcomes.empty():
                await prediction_states.finish(self.sessions, self.id, self._drain())
            await prediction_upkeep.release_own(self.sessions, self.id)
            await self.visibility.forget()
        await self.pool.close()

    async def _claim_loop(self) -> None:
        while True:
            wanted = min(CLAIM_BATCH, MAX_IN_FLIGHT - len(self._in_flight))
            try:
                claimed = await prediction_states.claim(
                    self.sessions,
                    self.id,
                    wanted,
                    self.settings.prediction_lease_seconds,
                    self.models,
                )
            except Exception as exc:  # the loop must outlive any one failure, or it goes idle
                _log_failure("claiming predictions failed; retrying", exc)
                claimed = []
                await asyncio.sleep(POLL_SECONDS)
            for item in claimed:
                self.adopt(item)
            if len(claimed) < wanted or wanted == 0:
                await self.notifier.wait_queued(POLL_SECONDS)

    def owns_next(self, model: str) -> prediction_states.Owner | None:
        """The lease under which a synchronous prediction of `model` may be inserted already
        claimed by this worker (then `adopt` it once committed): None unless this worker is
        started, runs `model` and has room."""
        if not self._tasks or len(self._in_flight) >= MAX_IN_FLIGHT:
            return None
        if self.models is not None and model not in self.models:
            return None
        return prediction_states.Owner(self.id, self.settings.prediction_lease_seconds)

    def adopt(self, item: Claimed) -> None:
        """Run a prediction this worker holds the lease of: claimed, or inserted claimed."""
        earlier = self._in_flight.get(item.id)
        if earlier is not None:  # its lease had lapsed and it was requeued: this run replaces it
            earlier.cancel()
        task = asyncio.create_task(self._execute(item))
        self._in_flight[item.id] = task
        task.add_done_callback(lambda _: self._forget(item.id, task))

    def _forget(self, prediction_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        # Only that task: the same prediction may have been taken afresh since (after a lapsed
        # lease), by another task.
        if self._in_flight.get(prediction_id) is task:
            del self._in_flight[prediction_id]

    def abandon(self, prediction_ids: Iterable[uuid.UUID]) -> None:
        """Stop running these predictions, if this worker runs any of them: each was ended
        elsewhere, and records no outcome here (the mock's wait, an Ollama request, stop now)."""
        for prediction_id in prediction_ids:
            task = self._in_flight.pop(prediction_id, None)
            if task is not None:
                task.cancel()

    async def _execute(self, item: Claimed) -> None:
        started = time.perf_counter()
        output: dict[str, Any] | None = None
        error: str | None = None
        try:
            output = await self.pool.run(item.model, item.deployment_id, item.input)
        except RuntimeFailure as exc:
            error = str(exc) or type(exc).__name__
        except Exception:
            logger.exception("model call failed", extra={"prediction_id": str(item.id)})
            error = "the model failed unexpectedly"
        PREDICTION_DURATION.labels(item.model).observe(time.perf_counter() - started)
        self._outcomes.put_nowait((item.id, item.model, output, error))

    def _drain(self) -> list[Outcome]:
        drained: list[Outcome] = []
        while not self._outcomes.empty() and len(drained) < FINISH_BATCH:
            drained.append(self._outcomes.get_nowait())
        return drained

    async def _finish_loop(self) -> None:
        """Outcomes are written in batches: one transaction for many finished predictions."""
        while True:
            first = await self._outcomes.get()
            await self._flush([first, *self._drain()])

    async def _flush(self, outcomes: list[Outcome]) -> None:
        """Record outcomes, retrying until the database takes them: dropping them would leave the
        rows running (this worker keeps renewing their leases) or rerun their models."""
        pause = 0.5
        while True:
            try:
                rows = await prediction_states.finish(self.sessions, self.id, outcomes)
                break
            except Exception as exc:
                _log_failure("recording outcomes failed; retrying", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30)
        recorded = {row.id: row for row in rows}
        self.notifier.finished_here({outcome[0]: recorded.get(outcome[0]) for outcome in outcomes})
        if any(row.callback_url is not None for row in rows):
            self.webhooks.wake()
        for prediction_id, model, _, error in outcomes:
            if prediction_id in recorded:  # not those ended meanwhile (cancelled, say)
                PREDICTIONS.labels(model, "completed" if error is None else "failed").inc()

    async def _renew(self) -> None:
        """Renewing the leases also tells which predictions this worker no longer holds: where no
        NOTIFY says so (SQLite, a notification lost), that is how it learns to stop them. Only
        those it ran before asking: one adopted meanwhile may not be committed in what was read."""
        before = dict(self._in_flight)
        held = await prediction_upkeep.renew_leases(
            self.sessions, self.id, self.settings.prediction_lease_seconds
        )
        self.abandon(
            [
                prediction_id
                for prediction_id, task in before.items()
                if prediction_id not in held and self._in_flight.get(prediction_id) is task
            ]
        )

    async def _recover(self) -> None:
        if await prediction_upkeep.recover_expired(self.sessions):
            self.notifier.wake()

    async def prune(self, batch: int = prediction_upkeep.PRUNE_BATCH) -> int:
        """Delete the finished predictions older than PREDICTION_RETENTION_DAYS, `batch` at a
        time, until none is left; how many."""
        before = utcnow() - timedelta(days=self.settings.prediction_retention_days)
        pruned = 0
        while True:
            deleted = await prediction_upkeep.prune_finished(self.sessions, before, batch)
            pruned += deleted
            if deleted < batch:
                return pruned
            await asyncio.sleep(0)  # between batches, the claim loop gets its turn

    async def _sweep(self) -> None:
        await runtime_sweeper.sweep(self.sessions)

    async def _end_overdue(self) -> None:
        await prediction_deadlines.sweep(self.sessions, self.notifier)

    async def _release(self) -> None:
        ids = self.pool.deployment_ids()
        if ids:
            running = await prediction_sql.running_deployments(self.sessions, ids)
            await self.pool.release_stopped(set(ids), running)

    @staticmethod
    async def _every(
        seconds: float, job: Callable[[], Awaitable[object]], at_once: bool = False
    ) -> None:
        if not at_once:
            await asyncio.sleep(seconds)
        while True:
            try:
                await job()
            except Exception as exc:  # a failed round is retried on the next tick
                _log_failure(f"periodic worker job {job.__name__} failed", exc)
            await asyncio.sleep(seconds)


def _log_failure(what: str, exc: Exception) -> None:
    log_failure(logger, what, exc)
