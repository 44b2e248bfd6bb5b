"""Where the pure scheduler meets the database.

Everything here is synchronous SQLAlchemy run through `AsyncSession.run_sync`, because the
scheduler's incremental driver calls `fetch` while it walks; the caller holds the cluster's row
lock (FOR NO KEY UPDATE) for the whole transaction, so the pass sees a state nobody else changes.
"""

import uuid
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text, true, update
from sqlalchemy.orm import Session

from app.core.metrics import PREEMPTIONS, SCHEDULING_DECISIONS
from app.models.cluster import Cluster
from app.models.deployment import (
    Deployment,
    DeploymentDependency,
    DeploymentEvent,
    DeploymentStatus,
    PreemptionPolicy,
)
from app.models.prediction import Prediction, PredictionStatus
from app.scheduling import (
    Decision,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    get_strategy,
    schedule_incremental,
)

PENDING, RUNNING, FAILED = (
    DeploymentStatus.pending,
    DeploymentStatus.running,
    DeploymentStatus.failed,
)
_QUEUE_ORDER = (Deployment.priority.desc(), Deployment.created_at, Deployment.id)


def record(
    session: Session, deployment_id: uuid.UUID, kind: str, at: datetime, **detail: Any
) -> None:
    session.add(DeploymentEvent(deployment_id=deployment_id, type=kind, at=at, detail=detail))


@dataclass
class _Known:
    """Resources of every deployment the pass was handed, to apply its decision by id."""

    resources: dict[uuid.UUID, Resources] = field(default_factory=dict)

    def add(self, deployment_id: uuid.UUID, resources: Resources) -> None:
        self.resources[deployment_id] = resources


def pending_of(row: Any) -> PendingDeployment:
    return PendingDeployment(
        row.id,
        row.priority,
        Resources(row.cpu_millis, row.ram_millis, row.gpu),
        row.created_at,
        row.preemption_policy == PreemptionPolicy.preempt_lower_priority,
    )


_COLUMNS = (
    Deployment.id,
    Deployment.priority,
    Deployment.cpu_millis,
    Deployment.ram_millis,
    Deployment.gpu,
    Deployment.created_at,
    Deployment.started_at,
    Deployment.preemption_policy,
)


def _load_running(session: Session, cluster_id: uuid.UUID) -> list[RunningDeployment]:
    rows = session.execute(
        select(*_COLUMNS).where(Deployment.cluster_id == cluster_id, Deployment.status == RUNNING)
    )
    return [
        RunningDeployment(
            row.id,
            row.priority,
            Resources(row.cpu_millis, row.ram_millis, row.gpu),
            row.started_at,
            row.created_at,
            row.preemption_policy == PreemptionPolicy.preempt_lower_priority,
        )
        for row in rows
    ]


def _fits(limit: Resources) -> Any:
    return and_(
        Deployment.cpu_millis <= limit.cpu_millis,
        Deployment.ram_millis <= limit.ram_millis,
        Deployment.gpu <= limit.gpu,
    )


def _fetch(
    session: Session, cluster_id: uuid.UUID, flt: RelevanceFilter, seen: Set[uuid.UUID]
) -> list[PendingDeployment]:
    """The relevance filter as SQL, over the queue index, in scheduling order."""
    oversized = ~_fits(flt.capacity)
    bands = [
        and_(
            Deployment.preemption_policy == PreemptionPolicy.preempt_lower_priority,
            Deployment.priority >= band.priority_min,
            Deployment.priority <= band.priority_max if band.priority_max is not None else true(),
            _fits(band.max_resources),
        )
        for band in flt.bands
    ]
    stmt = (
        select(*_COLUMNS)
        .where(
            Deployment.cluster_id == cluster_id,
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
            or_(_fits(flt.fits), oversized, *bands),
        )
        .order_by(*_QUEUE_ORDER)
    )
    if seen:
        stmt = stmt.where(Deployment.id.not_in(list(seen)))
    if flt.limit is not None:
        stmt = stmt.limit(flt.limit)
    return [pending_of(row) for row in session.execute(stmt)]


def lower_priority_total(session: Session, cluster_id: uuid.UUID, priority: int) -> Resources:
    row = session.execute(
        select(
            func.coalesce(func.sum(Deployment.cpu_millis), 0),
            func.coalesce(func.sum(Deployment.ram_millis), 0),
            func.coalesce(func.sum(Deployment.gpu), 0),
        ).where(
            Deployment.cluster_id == cluster_id,
            Deployment.status == RUNNING,
            Deployment.priority < priority,
        )
    ).one()
    return Resources(int(row[0]), int(row[1]), int(row[2]))


def place_newcomer(
    session: Session, cluster: Cluster, deployment: Deployment, now: datetime
) -> None:
    """Schedule one new deployment whose dependencies are met, on a cluster at its fixpoint.

    Only the newcomer can act, so the common cases need no pass at all: it fits (start it), or it
    cannot get room even by evicting every lower priority (leave it pending). Only a preemption
    loads the running set and runs the incremental pass.
    """
    strategy = get_strategy(cluster.preemption_strategy)
    needed = deployment.resources
    if needed.fits_in(cluster.available):
        _start_new(session, cluster, deployment, now)
        return
    if not (deployment.may_preempt and strategy.evicts):
        return
    if not needed.fits_in(
        cluster.available + lower_priority_total(session, cluster.id, deployment.priority)
    ):
        return
    newcomer = PendingDeployment(
        deployment.id, deployment.priority, needed, deployment.created_at, True
    )
    reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True)


def _start_new(session: Session, cluster: Cluster, deployment: Deployment, now: datetime) -> None:
    deployment.status, deployment.status_reason, deployment.started_at = RUNNING, None, now
    cluster.allocated = cluster.allocated + deployment.resources
    cluster.pending_count -= 1
    cluster.running_count += 1
    record(session, deployment.id, "scheduled", now)
    SCHEDULING_DECISIONS.labels("started").inc()


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
    known = _Known()
    running = _load_running(session, cluster.id)
    for item in running:
        known.add(item.id, item.resources)
    arriving = list(newcomers)
    for newcomer in arriving:
        known.add(newcomer.id, newcomer.resources)

    def fetch(flt: RelevanceFilter, seen: Set[uuid.UUID]) -> list[PendingDeployment]:
        page = _fetch(session, cluster.id, flt, seen)
        for item in page:
            known.add(item.id, item.resources)
        return page

    decision = schedule_incremental(
        cluster.capacity,
        running,
        arriving,
        fetch,
        get_strategy(cluster.preemption_strategy),
        now,
        at_fixpoint=at_fixpoint,
    )
    _apply(session, cluster, decision, known, now)
    return decision


def reschedule_sync(
    session: Session,
    cluster: Cluster,
    now: datetime,
    newcomers: list[PendingDeployment],
    at_fixpoint: bool,
) -> None:
    """`reschedule` with positional arguments, for `AsyncSession.run_sync`."""
    reschedule(session, cluster, now, newcomers=newcomers, at_fixpoint=at_fixpoint)


def _apply(
    session: Session, cluster: Cluster, decision: Decision, known: _Known, now: datetime
) -> None:
    """Evictions first, then starts, then failures: the order the pass took them in."""
    allocated = cluster.allocated
    if decision.evicted:
        victims = [e.victim_id for e in decision.evicted]
        session.execute(
            update(Deployment)
            .where(Deployment.id.in_(victims))
            .values(
                status=PENDING,
                status_reason="preempted",
                preemption_count=Deployment.preemption_count + 1,
            )
        )
        for eviction in decision.evicted:
            record(
                session,
                eviction.victim_id,
                "preempted",
                now,
                preempted_by=str(eviction.preemptor_id),
            )
            record(session, eviction.victim_id, "requeued", now)
            allocated = allocated - known.resources[eviction.victim_id]
        SCHEDULING_DECISIONS.labels("evicted").inc(len(victims))
        PREEMPTIONS.inc(len(victims))
    if decision.started:
        session.execute(
            update(Deployment)
            .where(Deployment.id.in_(decision.started))
            .values(status=RUNNING, status_reason=None, started_at=now)
        )
        for started in decision.started:
            record(session, started, "scheduled", now)
            allocated = allocated + known.resources[started]
        SCHEDULING_DECISIONS.labels("started").inc(len(decision.started))
    moved = len(decision.started) - len(decision.evicted)
    cluster.allocated = allocated
    cluster.running_count += moved
    cluster.pending_count -= moved
    if decision.failed:
        fail(session, decision.failed, "exceeds_cluster_capacity", now)
        SCHEDULING_DECISIONS.labels("failed").inc(len(decision.failed))


def end_predictions(session: Session, deployment_ids: list[uuid.UUID], now: datetime) -> None:
    """A deployment that stops running for good takes its unfinished predictions with it: they
    fail now, in the same transaction, and a worker still running one cannot complete it."""
    if not deployment_ids:
        return
    ended = session.scalars(
        update(Prediction)
        .where(
            Prediction.deployment_id.in_(deployment_ids),
            Prediction.status.in_([PredictionStatus.queued, PredictionStatus.running]),
        )
        .values(
            status=PredictionStatus.failed,
            error="deployment ended",
            completed_at=now,
            lease_expires_at=None,
        )
        .returning(Prediction.id)
        .execution_options(synchronize_session=False)
    ).all()
    if ended and session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_notify('prediction_done', x) FROM unnest(CAST(:ids AS text[])) AS x"),
            {"ids": [str(i) for i in ended]},
        )


def fail(session: Session, ids: Iterable[uuid.UUID], reason: str, now: datetime) -> None:
    """Fail pending deployments, then their pending dependents (`dependency_failed`), and theirs
    in turn, keeping every touched cluster's pending count right."""
    session.flush()  # count updates below are atomic SQL; in-memory changes must be in first
    frontier, why = list(ids), reason
    while frontier:
        rows = session.execute(
            update(Deployment)
            .where(Deployment.id.in_(frontier), Deployment.status == PENDING)
            .values(status=FAILED, status_reason=why, finished_at=now)
            .returning(Deployment.id, Deployment.cluster_id)
        ).all()
        per_cluster: dict[uuid.UUID, int] = {}
        for deployment_id, cluster_id in rows:
            record(session, deployment_id, "failed", now, reason=why)
            per_cluster[cluster_id] = per_cluster.get(cluster_id, 0) + 1
        for cluster_id, count in sorted(per_cluster.items()):
            # Atomic decrement: another cluster's row may be locked by a plain create right now.
            session.execute(
                update(Cluster)
                .where(Cluster.id == cluster_id)
                .values(pending_count=Cluster.pending_count - count)
            )
        failed_ids = [row[0] for row in rows]
        if not failed_ids:
            return
        end_predictions(session, failed_ids, now)
        frontier = list(
            session.scalars(
                select(DeploymentDependency.deployment_id).where(
                    DeploymentDependency.depends_on_id.in_(failed_ids)
                )
            )
        )
        why = "dependency_failed"
