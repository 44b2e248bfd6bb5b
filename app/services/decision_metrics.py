"""The metrics of real scheduling decisions.

A dry run (`POST .../deployments?dry_run=true`) runs the very code of a creation in a transaction
it rolls back. Its session is marked, and nothing decided in it moves a metric: a rehearsal is not
a decision.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from app.core.metrics import EVICTIONS_AVOIDED, PREEMPTIONS, SCHEDULING_DECISIONS, TIME_TO_START

_DRY_RUN = "dry_run"


def mark_dry_run(session: Session) -> None:
    session.info[_DRY_RUN] = True


def is_dry_run(session: Session) -> bool:
    return bool(session.info.get(_DRY_RUN))


def count_decisions(session: Session, kind: str, count: int = 1) -> None:
    """`kind`: started, evicted or failed."""
    if count and not is_dry_run(session):
        SCHEDULING_DECISIONS.labels(kind).inc(count)
        if kind == "evicted":
            PREEMPTIONS.inc(count)


def first_starts(session: Session, created: Iterable[datetime], now: datetime) -> None:
    """The creation times of deployments starting for the first time at `now`."""
    if not is_dry_run(session):
        for at in created:
            TIME_TO_START.observe(max(0.0, (now - at).total_seconds()))


def evictions_avoided(session: Session, count: int) -> None:
    if count and not is_dry_run(session):
        EVICTIONS_AVOIDED.inc(count)
