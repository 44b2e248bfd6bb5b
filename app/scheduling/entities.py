"""The scheduler's plain inputs and outputs.

Frozen dataclasses rather than ORM rows: the scheduler never sees a session, so it can be tested,
property-checked and benchmarked alone, and the service maps rows to these in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from app.scheduling.resources import Resources


@dataclass(frozen=True, slots=True)
class RuntimeLimits:
    """How long each run of a deployment may or must last.

    `min_runtime`: once started, it cannot be evicted for that long (protection). `max_runtime`:
    a run that lasts that long is completed. Both count from each start.
    """

    min_runtime: timedelta | None = None
    max_runtime: timedelta | None = None


NO_LIMITS = RuntimeLimits()


@dataclass(frozen=True, slots=True)
class RunningDeployment:
    """A deployment holding resources.

    `created_at`, `may_preempt` and `limits` travel with it because an evicted deployment goes back
    to the queue at its original place and keeps its own rules. `protected_until` is set while its
    protection holds: no strategy may choose it as a victim. The service clears it in the
    transaction that reschedules the cluster once the time has passed, so a cluster's state
    changes only in transactions that run a pass. `stops_at`: when its run reaches
    `max_runtime`. `evict_at` is set while it is being preempted gracefully (for `preempted_by`):
    it still holds its resources, nobody may choose it again, and it goes back to the queue then.
    """

    id: UUID
    priority: int
    resources: Resources
    started_at: datetime
    created_at: datetime
    may_preempt: bool
    limits: RuntimeLimits = NO_LIMITS
    protected_until: datetime | None = None
    stops_at: datetime | None = None
    evict_at: datetime | None = None
    preempted_by: UUID | None = None


@dataclass(frozen=True, slots=True)
class PendingDeployment:
    """A deployment whose dependencies are met, waiting for room.

    `may_preempt` is `preemption_policy == "preempt_lower_priority"`; with `never` it waits its turn
    and never evicts anyone (it can still be evicted once running).
    """

    id: UUID
    priority: int
    resources: Resources
    created_at: datetime
    may_preempt: bool
    limits: RuntimeLimits = NO_LIMITS

    def started(self, now: datetime) -> RunningDeployment:
        limits = self.limits
        return RunningDeployment(
            self.id,
            self.priority,
            self.resources,
            now,
            self.created_at,
            self.may_preempt,
            limits,
            None if limits.min_runtime is None else now + limits.min_runtime,
            None if limits.max_runtime is None else now + limits.max_runtime,
        )


def requeued(running: RunningDeployment) -> PendingDeployment:
    """The pending form of an evicted deployment: same priority, same place in the queue."""
    return PendingDeployment(
        running.id,
        running.priority,
        running.resources,
        running.created_at,
        running.may_preempt,
        running.limits,
    )


@dataclass(frozen=True, slots=True)
class Eviction:
    victim_id: UUID
    preemptor_id: UUID


@dataclass(frozen=True, slots=True)
class Decision:
    """What one pass decided, each list in the order it happened.

    Within one pass a deployment is evicted at most once and, once started, never evicted again
    (preemptors act in non-increasing priority order and victims rank strictly below their
    preemptor). So the service may apply `evicted`, then `started`, then `failed`: an id in both
    `evicted` and `started` was evicted and then ran again in the same pass.
    `failed` holds pending deployments larger than the whole cluster in some dimension.
    """

    started: list[UUID] = field(default_factory=list)
    evicted: list[Eviction] = field(default_factory=list)
    failed: list[UUID] = field(default_factory=list)
