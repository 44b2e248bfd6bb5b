"""A worker's webhook dispatcher: it leases the callbacks that are due (`deliveries.lease_due`)
and sends them, at most `CONCURRENCY` at a time, each in a task of its own beside the model loop:
a slow or dead receiver holds one slot for at most WEBHOOK_TIMEOUT_SECONDS, and never a
prediction. It looks every second, and at once when woken (its worker finished predictions)."""

import asyncio
import contextlib
import logging

import httpx

from app.core.config import Settings
from app.db.outage import log_failure
from app.models.prediction import WebhookState
from app.services.prediction_states import Sessions
from app.services.webhooks import deliveries
from app.services.webhooks.deliveries import Delivery, Schedule
from app.services.webhooks.sender import send
from app.services.webhooks.transport import Resolver, guarded_client, resolve
from app.services.webhooks.urls import UrlPolicy

logger = logging.getLogger(__name__)

CONCURRENCY = 32
POLL_SECONDS = 1.0


class WebhookDispatcher:
    def __init__(
        self, settings: Settings, sessions: Sessions, resolver: Resolver = resolve
    ) -> None:
        """`resolver`: how hosts are resolved (each address it gives is checked)."""
        self.sessions = sessions
        self.policy = UrlPolicy.of(settings)
        self.schedule = Schedule.of(settings)
        self.timeout = settings.webhook_timeout_seconds
        self.lease_seconds = self.timeout + deliveries.LEASE_MARGIN_SECONDS
        self.resolver = resolver
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled. Deliveries under way are cancelled with it: unrecorded, each is
        attempted again (under the next number) once its lease lapses."""
        client = guarded_client(self.policy, self.timeout, CONCURRENCY, self.resolver)
        async with client:
            try:
                while True:
                    self._wake.clear()  # a wake-up from here on is for the next round
                    await self._dispatch(client)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            finally:
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _dispatch(self, client: httpx.AsyncClient) -> None:
        room = CONCURRENCY - len(self._in_flight)
        try:
            leased = await deliveries.lease_due(self.sessions, room, self.lease_seconds)
        except Exception as exc:  # the loop must outlive any one failure, or callbacks stop
            log_failure(logger, "leasing webhook deliveries failed; retrying", exc)
            return
        for delivery in leased:
            task = asyncio.create_task(self._deliver(client, delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            attempt = await send(client, self.policy, delivery, self.timeout)
            state = await deliveries.record(self.sessions, delivery, attempt, self.schedule)
        except Exception as exc:  # said, not lost: attempted again once its lease lapses
            what = f"delivering the callback of prediction {delivery.prediction.id} failed"
            log_failure(logger, what, exc)
            return
        if state == WebhookState.failed:
            logger.warning(
                "the callback of prediction %s failed for good after %d attempt(s): %s",
                delivery.prediction.id,
                delivery.attempt,
                attempt.error or f"HTTP {attempt.status_code}",
            )
