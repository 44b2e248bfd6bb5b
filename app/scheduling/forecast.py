"""When pending deployments would start if nothing else happened: a forward simulation.

From the current state, time advances to the next moment something changes on its own: a running
deployment reaches its `stops_at` (it is completed), a protection ends, or a victim of a graceful
preemption leaves (it goes back to the queue). At each such moment the
real pass runs, with its real strategy, so evictions, requeues and the starts they allow happen
as they would. No deployment arrives and none ends early, so a pending deployment's estimate is
the time the simulation first starts it; none when something ahead of it has no deadline (the
simulation runs out of moments first) or after `max_steps` moments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from app.scheduling.entities import PendingDeployment, RunningDeployment, requeued
from app.scheduling.reservations import reservations
from app.scheduling.resources import Resources
from app.scheduling.scheduler import schedule
from app.scheduling.strategies import Strategy

DEFAULT_MAX_STEPS = 100


def next_moment(running: Iterable[RunningDeployment]) -> datetime | None:
    """The earliest deadline or end of protection among `running`."""
    moments = [
        moment
        for run in running
        for moment in (run.stops_at, run.protected_until, run.evict_at)
        if moment is not None
    ]
    return min(moments, default=None)


def estimate_starts(
    capacity: Resources,
    running: Sequence[RunningDeployment],
    pending: Iterable[PendingDeployment],
    strategy: Strategy,
    now: datetime,
    *,
    wanted: Set[UUID] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    grace: timedelta | None = None,
) -> dict[UUID, datetime]:
    """Start time of each pending deployment (dependencies met) the simulation starts; it stops
    early once every id in `wanted` has one. `grace`: the cluster's preemption grace."""
    on = {run.id: run for run in running}
    queue = {item.id: item for item in pending}
    waiting = set(queue)
    starts: dict[UUID, datetime] = {}
    moment = now
    for _ in range(max_steps):
        held = reservations(on.values(), queue.values())
        decision = schedule(
            capacity,
            list(on.values()),
            queue.values(),
            strategy,
            moment,
            grace=grace,
            reserved=held,
        )
        for eviction in decision.evicted:
            victim = on.pop(eviction.victim_id)
            if grace is None:
                queue[victim.id] = requeued(victim)
            else:
                leaving = replace(
                    victim, evict_at=moment + grace, preempted_by=eviction.preemptor_id
                )
                on[victim.id] = leaving
        for started in decision.started:
            on[started] = queue.pop(started).started(moment)
            if started in waiting:
                starts.setdefault(started, moment)
        for failed in decision.failed:
            queue.pop(failed)
        if not queue or (wanted is not None and wanted <= starts.keys()):
            break
        upcoming = next_moment(on.values())
        if upcoming is None:
            break
        moment = max(moment, upcoming)
        for run in list(on.values()):
            if run.evict_at is not None and run.evict_at <= moment:
                queue[run.id] = requeued(on.pop(run.id))
        on = {run.id: run for run in _as_of(on.values(), moment)}
    return starts


def _as_of(running: Iterable[RunningDeployment], moment: datetime) -> Iterable[RunningDeployment]:
    """The running set once `moment` has come: deadlines reached end, protections lapse."""
    for run in running:
        if run.stops_at is not None and run.stops_at <= moment:
            continue
        if run.protected_until is not None and run.protected_until <= moment:
            run = replace(run, protected_until=None)
        yield run
