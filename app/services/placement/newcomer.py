"""Placing one new deployment whose dependencies are met, on a cluster at its fixpoint.

After every pass nothing pending can act, so only the newcomer can, and the common cases need no
pass at all: it fits (start it), or it cannot get room even by evicting every lower priority (leave
it pending). A strategy whose victims always come from the lowest candidates
(`Strategy.victims_from_tail`) lets a preemption load only that tail (`app.scheduling.reprieve`);
when `reprieve.settles` proves that nothing else can act afterwards, the eviction and start are the
whole pass. Anything else runs the general pass, which loads the running set: so do graceful
evictions, and any arrival while victims are leaving (room is reserved for their preemptors).
"""

from datetime import datetime

from sqlalchemy.orm import Session

from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentStatus
from app.scheduling import Eviction, RunningDeployment, get_strategy
from app.scheduling.reprieve import deficit, settles, victims_in_tail
from app.services.decision_metrics import count_decisions, first_starts
from app.services.deployment_events import record
from app.services.placement.passes import Known, evict, reschedule
from app.services.placement.statements import (
    lower_priority_total,
    pending_of_deployment,
    tail_candidates,
)

# Priorities are 0 .. 1000 (a check constraint): nothing runs below 0.
_LOWEST_PRIORITY = 0


def place_newcomer(
    session: Session, cluster: Cluster, deployment: Deployment, now: datetime
) -> list[Eviction]:
    """Place it; the evictions its placement made (a dry run reports them)."""
    needed = deployment.resources
    available = cluster.available
    if cluster.preempting_count:
        # Room is reserved for preemptors waiting for their victims: only a pass knows how much.
        newcomer = pending_of_deployment(deployment)
        return reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True).evicted
    if needed.fits_in(available):
        _start(session, cluster, deployment, now)
        return []
    if not deployment.may_preempt or deployment.priority <= _LOWEST_PRIORITY:
        return []
    strategy = get_strategy(cluster.preemption_strategy)
    if not strategy.evicts:
        return []
    newcomer = pending_of_deployment(deployment)
    if not strategy.victims_from_tail:
        below = lower_priority_total(session, cluster.id, deployment.priority)
        if needed.fits_in(available + below):
            return reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True).evicted
        return []
    tail = tail_candidates(session, cluster.id, deployment.priority, deficit(needed, available))
    victims = victims_in_tail(needed, available, tail)
    if victims is None:
        return []
    if cluster.preemption_grace_seconds or not settles(needed, victims):
        return reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True).evicted
    known = Known({victim.id: victim.resources for victim in victims})
    evictions = [Eviction(victim.id, deployment.id) for victim in victims]
    evict(session, cluster, evictions, known, now)
    _start(session, cluster, deployment, now)
    return evictions


def deployment_run(deployment: Deployment, now: datetime) -> RunningDeployment:
    """`deployment` as the scheduler would start it at `now` (its protection and deadline)."""
    return pending_of_deployment(deployment).started(now)


def _start(session: Session, cluster: Cluster, deployment: Deployment, now: datetime) -> None:
    run = deployment_run(deployment, now)
    deployment.status, deployment.status_reason, deployment.started_at = (
        DeploymentStatus.running,
        None,
        now,
    )
    deployment.protected_until, deployment.stops_at = run.protected_until, run.stops_at
    deployment.serving_ready = deployment.serving_reason = deployment.serving_since = None
    cluster.allocated = cluster.allocated + deployment.resources
    cluster.pending_count -= 1
    cluster.running_count += 1
    record(session, deployment.id, "scheduled", now)
    count_decisions(session, "started")
    first_starts(session, [deployment.created_at], now)
