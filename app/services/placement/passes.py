"""The general scheduling pass: load the running set, let the pure incremental pass fetch what
could act through the relevance filter, and apply its decision to the rows and the cluster's books.

Synchronous SQLAlchemy, run through `AsyncSession.run_sync`, because the pure pass calls `fetch`
while it walks; the caller holds the cluster's row lock for the whole transaction, so the pass sees
a state nobody else changes.
"""

import uuid
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentStatus
from app.scheduling import (
    Decision,
    Eviction,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    get_strategy,
    schedule_incremental,
    total,
)
from app.scheduling.entities import NO_LIMITS, RuntimeLimits
from app.scheduling.reservations import reservations
from app.services.decision_metrics import count_decisions, first_starts
from app.services.deployment_events import record
from app.services.deployment_failures import fail
from app.services.placement.statements import (
    BEGIN_PREEMPTING,
    EVICT,
    fetch_relevant,
    load_awaiting,
    load_running,
)

STAMP_LIMITS = (
    update(Deployment)
    .where(Deployment.id == bindparam("started_id"))
    .values(protected_until=bindparam("until"), stops_at=bindparam("stops"))
)


@dataclass
class Known:
    """Resources (and runtime limits, where set) of every deployment the pass was handed, to
    apply its decision by id."""

    resources: dict[uuid.UUID, Resources] = field(default_factory=dict)
    limits: dict[uuid.UUID, RuntimeLimits] = field(default_factory=dict)

    def add(
        self, deployment_id: uuid.UUID, resources: Resources, limits: RuntimeLimits = NO_LIMITS
    ) -> None:
        self.resources[deployment_id] = resources
        if limits is not NO_LIMITS:
            self.limits[deployment_id] = limits


def reschedule(
    session: Session,
    cluster: Cluster,
    now: datetime,
    *,
    newcomers: Iterable[PendingDeployment] = (),
    at_fixpoint: bool = False,
) -> Decision:
    """Run the incremental pass for `cluster` and apply its decision."""
    session.flush()
    known = Known()
    running = load_running(session, cluster.id)
    for item in running:
        known.add(item.id, item.resources, item.limits)
    arriving = list(newcomers)
    # Preemptors waiting for their victims to leave: handed to the pass with what is reserved for
    # them, which the relevance filter knows nothing of.
    arriving += load_awaiting(session, running, {newcomer.id for newcomer in arriving})
    for newcomer in arriving:
        known.add(newcomer.id, newcomer.resources, newcomer.limits)

    def fetch(flt: RelevanceFilter, seen: Set[uuid.UUID]) -> list[PendingDeployment]:
        page = fetch_relevant(session, cluster.id, flt, seen)
        for item in page:
            known.add(item.id, item.resources, item.limits)
        return page

    decision = schedule_incremental(
        cluster.capacity,
        running,
        arriving,
        fetch,
        get_strategy(cluster.preemption_strategy),
        now,
        at_fixpoint=at_fixpoint,
        grace=grace_of(cluster),
        reserved=reservations(running, arriving),
    )
    _apply(session, cluster, decision, known, now)
    return decision


def reserved_total(session: Session, cluster_id: uuid.UUID) -> Resources:
    """What is reserved on the cluster for preemptors waiting for their victims."""
    running = load_running(session, cluster_id)
    return total(reservations(running, load_awaiting(session, running, frozenset())).values())


def grace_of(cluster: Cluster) -> timedelta | None:
    seconds = cluster.preemption_grace_seconds
    return timedelta(seconds=seconds) if seconds else None


def reschedule_sync(
    session: Session,
    cluster: Cluster,
    now: datetime,
    newcomers: list[PendingDeployment],
    at_fixpoint: bool,
) -> None:
    """`reschedule` with positional arguments, for `AsyncSession.run_sync`."""
    reschedule(session, cluster, now, newcomers=newcomers, at_fixpoint=at_fixpoint)


def evict(
    session: Session,
    cluster: Cluster,
    evicted: list[Eviction],
    known: Known,
    now: datetime,
    *,
    leaving: bool = False,
) -> None:
    """Victims back to the queue: one UPDATE, their events, the cluster's books. `leaving`: they
    were `preempting` (their grace is over), not `running`."""
    session.connection().execute(EVICT, {"ids": [e.victim_id for e in evicted]})
    freed_cpu = freed_ram = freed_gpu = 0
    for eviction in evicted:
        record(
            session, eviction.victim_id, "preempted", now, preempted_by=str(eviction.preemptor_id)
        )
        record(session, eviction.victim_id, "requeued", now)
        res = known.resources[eviction.victim_id]
        freed_cpu += res.cpu_millis
        freed_ram += res.ram_millis
        freed_gpu += res.gpu
    cluster.allocated = cluster.allocated - Resources(freed_cpu, freed_ram, freed_gpu)
    if leaving:
        cluster.preempting_count -= len(evicted)
    else:
        cluster.running_count -= len(evicted)
    cluster.pending_count += len(evicted)
    count_decisions(session, "evicted", len(evicted))


def begin_preempting(
    session: Session, cluster: Cluster, evicted: list[Eviction], now: datetime, grace: timedelta
) -> None:
    """Graceful evictions: the victims become `preempting` until `now + grace`, still holding
    their resources (the books' allocation does not change), each with a `preempting` event."""
    leaves = now + grace
    session.connection().execute(
        BEGIN_PREEMPTING,
        [{"victim": e.victim_id, "by": e.preemptor_id, "leaves": leaves} for e in evicted],
    )
    for eviction in evicted:
        record(
            session,
            eviction.victim_id,
            "preempting",
            now,
            preempted_by=str(eviction.preemptor_id),
            evict_at=leaves.isoformat().replace("+00:00", "Z"),
        )
    cluster.running_count -= len(evicted)
    cluster.preempting_count += len(evicted)
    count_decisions(session, "preempting", len(evicted))


def _stamp_limits(session: Session, started: list[uuid.UUID], known: Known, now: datetime) -> None:
    """The protection and deadline of each started deployment that has runtime limits."""
    if not started:
        return
    rows = []
    for deployment_id in started:
        limits = known.limits[deployment_id]
        rows.append(
            {
                "started_id": deployment_id,
                "until": None if limits.min_runtime is None else now + limits.min_runtime,
                "stops": None if limits.max_runtime is None else now + limits.max_runtime,
            }
        )
    session.connection().execute(STAMP_LIMITS, rows)


def _apply(
    session: Session, cluster: Cluster, decision: Decision, known: Known, now: datetime
) -> None:
    """Evictions first, then starts, then failures: the order the pass took them in."""
    grace = grace_of(cluster)
    if decision.evicted and grace is not None:
        begin_preempting(session, cluster, decision.evicted, now, grace)
    elif decision.evicted:
        evict(session, cluster, decision.evicted, known, now)
    if decision.started:
        rows = session.execute(
            update(Deployment)
            .where(Deployment.id.in_(decision.started))
            .values(status=DeploymentStatus.running, status_reason=None, started_at=now)
            # Unknown until a worker checks the model for this run.
            .values(serving_ready=None, serving_reason=None, serving_since=None)
            .returning(Deployment.created_at, Deployment.preemption_count)
        ).all()
        first_starts(session, [row.created_at for row in rows if not row.preemption_count], now)
        _stamp_limits(session, [i for i in decision.started if i in known.limits], known, now)
        for started in decision.started:
            record(session, started, "scheduled", now)
        cluster.allocated = cluster.allocated + Resources.sum(
            known.resources[started] for started in decision.started
        )
        cluster.running_count += len(decision.started)
        cluster.pending_count -= len(decision.started)
        count_decisions(session, "started", len(decision.started))
    if decision.failed:
        fail(session, decision.failed, "exceeds_cluster_capacity", now)
        count_decisions(session, "failed", len(decision.failed))
