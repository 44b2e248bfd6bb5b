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

from sqlalchemy import Select, and_, bindparam, func, or_, select, true, update
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
    Eviction,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    get_strategy,
    schedule_incremental,
)
from app.scheduling.reprieve import deficit, settles, tail_length, victims_in_tail
from app.scheduling.strategies.priority import PriorityPreemption
from app.workers.notifier import NOTIFY_DONE

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


# -- statements, built once; run on the session's connection (plain Core, no ORM layer) ------

# Computed in SQL, so that rows carry a plain bool instead of an enum to convert.
_MAY_PREEMPT = (Deployment.preemption_policy == PreemptionPolicy.preempt_lower_priority).label(
    "may_preempt"
)
# Row layout of everything loaded as a running deployment (see `_running_of`).
_RUNNING_COLUMNS = (
    Deployment.id,
    Deployment.priority,
    Deployment.cpu_millis,
    Deployment.ram_millis,
    Deployment.gpu,
    Deployment.started_at,
    Deployment.created_at,
    _MAY_PREEMPT,
)
_PENDING_COLUMNS = (
    Deployment.id,
    Deployment.priority,
    Deployment.cpu_millis,
    Deployment.ram_millis,
    Deployment.gpu,
    Deployment.created_at,
    _MAY_PREEMPT,
)
_CLUSTER = bindparam("cluster_id", type_=Deployment.cluster_id.type)
_PRIORITY = bindparam("priority", type_=Deployment.priority.type)
_CPU = bindparam("cpu", type_=Deployment.cpu_millis.type)
_RAM = bindparam("ram", type_=Deployment.ram_millis.type)
_GPU = bindparam("gpu", type_=Deployment.gpu.type)

_LOAD_RUNNING = select(*_RUNNING_COLUMNS).where(
    Deployment.cluster_id == _CLUSTER, Deployment.status == RUNNING
)

# Preemption candidates of a newcomer (running, strictly lower priority), lowest first: the
# reverse of the reprieve order (highest priority first, earliest started first, then id).
_LOWEST_FIRST = (Deployment.priority, Deployment.started_at.desc(), Deployment.id.desc())
_CANDIDATES = (Deployment.cluster_id == _CLUSTER, Deployment.status == RUNNING)
# The first page of them: nearly always enough to find the tail (`reprieve.tail_length`).
_TAIL_PAGE = 16
_TAIL_FIRST_PAGE = (
    select(*_RUNNING_COLUMNS)
    .where(*_CANDIDATES, Deployment.priority < _PRIORITY)
    .order_by(*_LOWEST_FIRST)
    .limit(_TAIL_PAGE)
)


def _sum_before(column: Any) -> Any:
    """Sum of `column` over the candidates before this one, lowest first (NULL for the first)."""
    return func.sum(column).over(order_by=_LOWEST_FIRST, rows=(None, -1))


def _tail_everything() -> Select[*tuple[Any, ...]]:
    """The whole tail in one query, when the first page was not enough: with the sums of the
    candidates before each one (lowest first) and of all of them, it returns the candidates whose
    predecessors do not cover the missing resources, and none when all of them together do not."""
    ranked = (
        select(
            *_RUNNING_COLUMNS,
            _sum_before(Deployment.cpu_millis).label("before_cpu"),
            _sum_before(Deployment.ram_millis).label("before_ram"),
            _sum_before(Deployment.gpu).label("before_gpu"),
            func.sum(Deployment.cpu_millis).over().label("all_cpu"),
            func.sum(Deployment.ram_millis).over().label("all_ram"),
            func.sum(Deployment.gpu).over().label("all_gpu"),
        )
        .where(*_CANDIDATES, Deployment.priority < _PRIORITY)
        .subquery("ranked")
    )
    c = ranked.c
    return (
        select(
            c.id,
            c.priority,
            c.cpu_millis,
            c.ram_millis,
            c.gpu,
            c.started_at,
            c.created_at,
            c.may_preempt,
        )
        .where(
            c.all_cpu >= _CPU,
            c.all_ram >= _RAM,
            c.all_gpu >= _GPU,
            or_(
                func.coalesce(c.before_cpu, 0) < _CPU,
                func.coalesce(c.before_ram, 0) < _RAM,
                func.coalesce(c.before_gpu, 0) < _GPU,
            ),
        )
        .order_by(c.priority, c.started_at.desc(), c.id.desc())
    )


_TAIL_EVERYTHING = _tail_everything()

_LOWER_TOTAL = select(
    func.coalesce(func.sum(Deployment.cpu_millis), 0),
    func.coalesce(func.sum(Deployment.ram_millis), 0),
    func.coalesce(func.sum(Deployment.gpu), 0),
).where(*_CANDIDATES, Deployment.priority < _PRIORITY)

# Run on the connection, as Core (so no session synchronization): victims are never loaded as ORM
# objects in the transactions that evict them (only as rows), so nothing in memory can go stale.
_EVICT = (
    update(Deployment)
    .where(Deployment.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=PENDING,
        status_reason="preempted",
        preemption_count=Deployment.preemption_count + 1,
    )
)


def _running_of(row: Any) -> RunningDeployment:
    return RunningDeployment(
        row[0], row[1], Resources(row[2], row[3], row[4]), row[5], row[6], bool(row[7])
    )


def _pending_of_row(row: Any) -> PendingDeployment:
    return PendingDeployment(
        row[0], row[1], Resources(row[2], row[3], row[4]), row[5], bool(row[6])
    )


def _load_running(session: Session, cluster_id: uuid.UUID) -> list[RunningDeployment]:
    return [
        _running_of(row)
        for row in session.connection().execute(_LOAD_RUNNING, {"cluster_id": cluster_id})
    ]


def _fits(prefix: str) -> Any:
    """Resources within the limit bound as `<prefix>_cpu`, `<prefix>_ram` and `<prefix>_gpu`."""
    return and_(
        Deployment.cpu_millis <= bindparam(f"{prefix}_cpu", type_=Deployment.cpu_millis.type),
        Deployment.ram_millis <= bindparam(f"{prefix}_ram", type_=Deployment.ram_millis.type),
        Deployment.gpu <= bindparam(f"{prefix}_gpu", type_=Deployment.gpu.type),
    )


# One statement per shape of filter (which bands have an upper bound), values bound per call.
_FETCH_STATEMENTS: dict[tuple[bool, ...], Select[*tuple[Any, ...]]] = {}


def _fetch_statement(flt: RelevanceFilter) -> Select[*tuple[Any, ...]]:
    shape = tuple(band.priority_max is not None for band in flt.bands)
    known = _FETCH_STATEMENTS.get(shape)
    if known is not None:
        return known
    bands = [
        and_(
            Deployment.preemption_policy == PreemptionPolicy.preempt_lower_priority,
            Deployment.priority >= bindparam(f"b{i}_min", type_=Deployment.priority.type),
            Deployment.priority <= bindparam(f"b{i}_max", type_=Deployment.priority.type)
            if bounded
            else true(),
            _fits(f"b{i}"),
        )
        for i, bounded in enumerate(shape)
    ]
    stmt = (
        select(*_PENDING_COLUMNS)
        .where(
            Deployment.cluster_id == _CLUSTER,
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
            Deployment.id.not_in(bindparam("seen", expanding=True)),
            or_(_fits("fits"), ~_fits("cap"), *bands),
        )
        .order_by(*_QUEUE_ORDER)
        .limit(bindparam("limit", type_=Deployment.priority.type))
    )
    _FETCH_STATEMENTS[shape] = stmt
    return stmt


def _put(params: dict[str, Any], prefix: str, limit: Resources) -> None:
    params[f"{prefix}_cpu"] = limit.cpu_millis
    params[f"{prefix}_ram"] = limit.ram_millis
    params[f"{prefix}_gpu"] = limit.gpu


def _fetch(
    session: Session, cluster_id: uuid.UUID, flt: RelevanceFilter, seen: Set[uuid.UUID]
) -> list[PendingDeployment]:
    """The relevance filter as SQL, over the queue index, in scheduling order."""
    params: dict[str, Any] = {
        "cluster_id": cluster_id,
        "seen": list(seen),
        # No limit: more rows than the cluster could hold pending (the column is an INTEGER).
        "limit": flt.limit if flt.limit is not None else 2**31 - 1,
    }
    _put(params, "fits", flt.fits)
    _put(params, "cap", flt.capacity)
    for i, band in enumerate(flt.bands):
        params[f"b{i}_min"] = band.priority_min
        if band.priority_max is not None:
            params[f"b{i}_max"] = band.priority_max
        _put(params, f"b{i}", band.max_resources)
    return [
        _pending_of_row(row) for row in session.connection().execute(_fetch_statement(flt), params)
    ]


def lower_priority_total(session: Session, cluster_id: uuid.UUID, priority: int) -> Resources:
    row = (
        session.connection()
        .execute(_LOWER_TOTAL, {"cluster_id": cluster_id, "priority": priority})
        .one()
    )
    return Resources(int(row[0]), int(row[1]), int(row[2]))


# Priorities are 0 .. 1000 (a check constraint): nothing runs below 0.
_LOWEST_PRIORITY = 0


def place_newcomer(
    session: Session, cluster: Cluster, deployment: Deployment, now: datetime
) -> None:
    """Schedule one new deployment whose dependencies are met, on a cluster at its fixpoint.

    Only the newcomer can act, so the common cases need no pass at all: it fits (start it), or it
    cannot get room even by evicting every lower priority (leave it pending). With the `priority`
    strategy a preemption loads only the tail of the candidates (`app.scheduling.reprieve`), and
    when `reprieve.settles` proves that nothing else can act afterwards, the eviction and start are
    the whole pass. Anything else runs the incremental pass, which loads the running set.
    """
    needed = deployment.resources
    available = cluster.available
    if needed.fits_in(available):
        _start_new(session, cluster, deployment, now)
        return
    if not deployment.may_preempt or deployment.priority <= _LOWEST_PRIORITY:
        return
    strategy = get_strategy(cluster.preemption_strategy)
    if not strategy.evicts:
        return
    newcomer = PendingDeployment(
        deployment.id, deployment.priority, needed, deployment.created_at, True
    )
    if not isinstance(strategy, PriorityPreemption):
        below = lower_priority_total(session, cluster.id, deployment.priority)
        if needed.fits_in(available + below):
            reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True)
        return
    tail = _tail(session, cluster.id, deployment.priority, deficit(needed, available))
    victims = victims_in_tail(needed, available, tail)
    if victims is None:
        return
    if not settles(needed, victims):
        reschedule(session, cluster, now, newcomers=[newcomer], at_fixpoint=True)
        return
    known = _Known({victim.id: victim.resources for victim in victims})
    _evict(session, cluster, [Eviction(victim.id, deployment.id) for victim in victims], known, now)
    _start_new(session, cluster, deployment, now)


def _tail(
    session: Session, cluster_id: uuid.UUID, priority: int, missing: Resources
) -> list[RunningDeployment]:
    """The candidates `reprieve.victims_in_tail` needs, lowest first: a page, rarely all of them."""
    params = {"cluster_id": cluster_id, "priority": priority}
    page = [_running_of(row) for row in session.connection().execute(_TAIL_FIRST_PAGE, params)]
    end = tail_length(missing, page)
    if end is not None:
        return page[:end]
    if len(page) < _TAIL_PAGE:
        return page  # every candidate
    sums = {"cpu": missing.cpu_millis, "ram": missing.ram_millis, "gpu": missing.gpu}
    return [
        _running_of(row) for row in session.connection().execute(_TAIL_EVERYTHING, params | sums)
    ]


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


def _evict(
    session: Session, cluster: Cluster, evicted: list[Eviction], known: _Known, now: datetime
) -> None:
    """Victims back to the queue: one UPDATE, their events, the cluster's books."""
    session.connection().execute(_EVICT, {"ids": [e.victim_id for e in evicted]})
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
    cluster.running_count -= len(evicted)
    cluster.pending_count += len(evicted)
    SCHEDULING_DECISIONS.labels("evicted").inc(len(evicted))
    PREEMPTIONS.inc(len(evicted))


def _apply(
    session: Session, cluster: Cluster, decision: Decision, known: _Known, now: datetime
) -> None:
    """Evictions first, then starts, then failures: the order the pass took them in."""
    if decision.evicted:
        _evict(session, cluster, decision.evicted, known, now)
    if decision.started:
        session.execute(
            update(Deployment)
            .where(Deployment.id.in_(decision.started))
            .values(status=RUNNING, status_reason=None, started_at=now)
        )
        for started in decision.started:
            record(session, started, "scheduled", now)
        cluster.allocated = cluster.allocated + Resources.sum(
            known.resources[started] for started in decision.started
        )
        cluster.running_count += len(decision.started)
        cluster.pending_count -= len(decision.started)
        SCHEDULING_DECISIONS.labels("started").inc(len(decision.started))
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
        session.execute(NOTIFY_DONE, {"ids": [str(i) for i in ended]})


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
