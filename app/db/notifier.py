"""PostgreSQL LISTEN/NOTIFY: wakes workers when predictions are queued and synchronous callers
when theirs are done. One listening connection per process. Everything that waits on it also
polls, so a lost notification (or SQLite, which has none) only costs latency, never correctness.

Database plumbing, below the services and the workers that use it: the statements that notify
(`notifies`, `notify_done`; the intake's wake-up rides on its insert, in
`app.services.prediction_sql`) and the listener (`Notifier`) live together here."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from app.core.metrics import NOTIFICATIONS

logger = logging.getLogger(__name__)

QUEUED_CHANNEL = "prediction_queued"
DONE_CHANNEL = "prediction_done"
# One NOTIFY per finished prediction, the id as payload; delivered at commit. Takes `:ids`.
_NOTIFY_DONE = text(
    f"SELECT pg_notify('{DONE_CHANNEL}', x) FROM unnest(CAST(:ids AS text[])) AS x"  # noqa: S608
)


def notifies(bound: Session | AsyncSession | AsyncConnection) -> bool:
    """Whether the database behind `bound` delivers notifications (PostgreSQL; others poll)."""
    engine = bound.engine if isinstance(bound, AsyncConnection) else bound.get_bind()
    return engine.dialect.name == "postgresql"


def notify_done(session: Session, ids: list[uuid.UUID]) -> None:
    """Wake whoever waits on these predictions when this transaction commits. Synchronous, for
    the transactions run through `run_sync`; `await db.run_sync(notify_done, ids)` otherwise."""
    if ids and notifies(session):
        session.execute(_NOTIFY_DONE, {"ids": [str(i) for i in ids]})


def listen_dsn(database_url: str) -> str | None:
    """The libpq DSN for a PostgreSQL URL; None for databases without LISTEN (SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(eq=False, slots=True)
class Watch:
    """One waiter's slot: `event` is set when the prediction is reported done; `outcome` is then
    its finished row if the reporter had it (the in-process worker), else None."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: object | None = None


DoneListener = Callable[[Iterable[uuid.UUID]], None]


class Notifier:
    def __init__(self, database_url: str) -> None:
        self._dsn = listen_dsn(database_url)
        self._queued = asyncio.Event()
        self._watchers: dict[uuid.UUID, list[Watch]] = {}
        self._done_listeners: list[DoneListener] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._dsn is not None

    async def start(self) -> None:
        if self._dsn is not None and self._task is None:
            self._task = asyncio.create_task(self._listen(self._dsn), name="notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self, dsn: str) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {QUEUED_CHANNEL}")
                    await conn.execute(f"LISTEN {DONE_CHANNEL}")
                    backoff = 0.5
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except (psycopg.Error, OSError) as exc:
                logger.warning("notification listener lost its connection: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    def _dispatch(self, channel: str, payload: str) -> None:
        NOTIFICATIONS.labels(channel).inc()
        if channel == QUEUED_CHANNEL:
            self._queued.set()
            return
        try:
            prediction_id = uuid.UUID(payload)
        except ValueError:
            return
        self.announce_done([prediction_id])

    def finished_here(self, outcomes: Mapping[uuid.UUID, object | None]) -> None:
        """Wake whoever in this process watches these predictions, handing each its finished row
        where there is one (None: read it). The in-process worker says so once its outcomes are
        committed, without waiting for its NOTIFY to come back, and hands the rows it wrote, so
        the waiting request need not read them again (the NOTIFY still tells the other
        processes; on SQLite this is the only wake-up there is)."""
        for prediction_id, outcome in outcomes.items():
            for watch in self._watchers.get(prediction_id, ()):
                watch.outcome = outcome
                watch.event.set()

    def announce_done(self, prediction_ids: Iterable[uuid.UUID]) -> None:
        """Predictions done, as NOTIFY reports them, or ended in this process by other means than
        its worker's finish (a cancel, a deadline): wake their watchers here (they read the row)
        and tell the done listeners, so that a worker still running one stops it. Said locally
        too, the news need not wait for NOTIFY's round trip, nor, on SQLite, for a poll."""
        ids = list(prediction_ids)
        self.finished_here(dict.fromkeys(ids))
        for listener in list(self._done_listeners):
            listener(ids)

    def add_done_listener(self, listener: DoneListener) -> None:
        self._done_listeners.append(listener)

    def remove_done_listener(self, listener: DoneListener) -> None:
        with contextlib.suppress(ValueError):
            self._done_listeners.remove(listener)

    async def wait_queued(self, within: float) -> None:
        """Until a prediction is queued somewhere, or `within` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queued.wait(), within)
        self._queued.clear()

    def wake(self) -> None:
        """Local wake-up: the in-process worker need not wait for the round trip."""
        self._queued.set()

    @contextlib.contextmanager
    def watching(self, prediction_id: uuid.UUID) -> Iterator[Watch]:
        """A watch reported to when `prediction_id` is done, for the `with` block. Watch before
        reading the row: a report that arrives between the read and the wait is then kept, not
        lost to the poll."""
        watch = Watch()
        self._watchers.setdefault(prediction_id, []).append(watch)
        try:
            yield watch
        finally:
            watchers = self._watchers[prediction_id]
            watchers.remove(watch)
            if not watchers:
                del self._watchers[prediction_id]
