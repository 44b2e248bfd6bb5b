"""The scheduler's plain inputs and outputs.

Frozen dataclasses rather than ORM rows: the scheduler never sees a session, so it can be tested,
property-checked and benchmarked alone, and the service maps rows to these in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from app.scheduling.resources import Resources


@dataclass(frozen=True, slots=True)
class RunningDeployment:
    """A deployment holding resources.

    `created_at` and `may_preempt` travel with it because an evicted deployment goes back to the
    queue at its original place and keeps its own right to preempt lower ones.
    """

    id: UUID
    priority: int
    resources: Resources
    started_at: datetime
    created_at: datetime
    may_preempt: bool


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

    def started(self, now: datetime) -> RunningDeployment:
        return RunningDeployment(
            self.id, self.priority, self.resources, now, self.created_at, self.may_preempt
        )


def requeued(running: RunningDeployment) -> PendingDeployment:
    """The pending form of an evicted deployment: same priority, same place in the queue."""
    return PendingDeployment(
        running.id, running.priority, running.resources, running.created_at, running.may_preempt
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
