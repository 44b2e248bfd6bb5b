"""The SQL placement runs, built once, and the mappers from their rows to the pure scheduler's
types. Every statement runs on the session's connection as plain Core: victims are never loaded
as ORM objects in the transactions that evict them (only as rows), so nothing in memory goes stale.

Each statement that re-expresses part of the pure scheduler (the tail of the preemption
candidates, the relevance filter) is checked against it on random worlds in PostgreSQL
(`tests/services/test_sql_mirrors.py`).
"""

import uuid
from collections.abc import Set
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, true, update
from sqlalchemy.orm import Session

from app.models.deployment import (
    HOLDING,
    LOWEST_FIRST,
    QUEUE_ORDER_BY,
    Deployment,
    DeploymentStatus,
    PreemptionPolicy,
    limits_of,
    sql_order,
)
from app.scheduling import PendingDeployment, RelevanceFilter, Resources, RunningDeployment
from app.scheduling.ordering import REPRIEVE
from app.scheduling.reprieve import tail_length

PENDING, RUNNING = DeploymentStatus.pending, DeploymentStatus.running


def pending_of_deployment(deployment: Deployment) -> PendingDeployment:
    """A deployment row loaded as an ORM object, as the scheduler sees it pending."""
    return PendingDeployment(
        deployment.id,
        deployment.priority,
        deployment.resources,
        deployment.created_at,
        deployment.may_preempt,
        deployment.limits,
    )


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
    Deployment.min_runtime_seconds,
    Deployment.max_runtime_seconds,
    Deployment.protected_until,
    Deployment.stops_at,
    Deployment.evict_at,
    Deployment.preempted_by,
)
# Row layout of everything loaded as a pending deployment (see `pending_of_row`); RETURNING
# clauses that feed it put these first.
QUEUE_COLUMNS = (
    Deployment.id,
    Deployment.priority,
    Deployment.cpu_millis,
    Deployment.ram_millis,
    Deployment.gpu,
    Deployment.created_at,
    _MAY_PREEMPT,
    Deployment.min_runtime_seconds,
    Deployment.max_runtime_seconds,
)
_CLUSTER = bindparam("cluster_id", type_=Deployment.cluster_id.type)
_PRIORITY = bindparam("priority", type_=Deployment.priority.type)
_CPU = bindparam("cpu", type_=Deployment.cpu_millis.type)
_RAM = bindparam("ram", type_=Deployment.ram_millis.type)
_GPU = bindparam("gpu", type_=Deployment.gpu.type)

# Everything holding resources: running, and leaving (`preempting`).
LOAD_RUNNING = select(*_RUNNING_COLUMNS).where(
    Deployment.cluster_id == _CLUSTER, Deployment.status.in_(HOLDING)
)

# Preemption candidates of a newcomer: running, not protected, strictly lower priority; read
# lowest first.
_CANDIDATES = (
    Deployment.cluster_id == _CLUSTER,
    Deployment.status == RUNNING,
    Deployment.protected_until.is_(None),
)
# The first page of them: nearly always enough to find the tail (`reprieve.tail_length`).
_TAIL_PAGE = 16
_TAIL_FIRST_PAGE = (
    select(*_RUNNING_COLUMNS)
    .where(*_CANDIDATES, Deployment.priority < _PRIORITY)
    .order_by(*LOWEST_FIRST)
    .limit(_TAIL_PAGE)
)


def _sum_before(column: Any) -> Any:
    """Sum of `column` over the candidates before this one, lowest first (NULL for the first)."""
    return func.sum(column).over(order_by=LOWEST_FIRST, rows=(None, -1))


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
            c.min_runtime_seconds,
            c.max_runtime_seconds,
            c.protected_until,
            c.stops_at,
            c.evict_at,
            c.preempted_by,
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
        .order_by(*sql_order(REPRIEVE.reversed(), c))
    )


_TAIL_EVERYTHING = _tail_everything()

_LOWER_TOTAL = select(
    func.coalesce(func.sum(Deployment.cpu_millis), 0),
    func.coalesce(func.sum(Deployment.ram_millis), 0),
    func.coalesce(func.sum(Deployment.gpu), 0),
).where(*_CANDIDATES, Deployment.priority < _PRIORITY)

EVICT = (
    update(Deployment)
    .where(Deployment.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=PENDING,
        status_reason="preempted",
        preemption_count=Deployment.preemption_count + 1,
        protected_until=None,
        stops_at=None,
        evict_at=None,
        preempted_by=None,
    )
)
BEGIN_PREEMPTING = (
    update(Deployment)
    .where(Deployment.id == bindparam("victim"))
    .values(
        status=DeploymentStatus.preempting,
        evict_at=bindparam("leaves"),
        preempted_by=bindparam("by"),
    )
)


def running_of(row: Any) -> RunningDeployment:
    return RunningDeployment(
        row[0],
        row[1],
        Resources(row[2], row[3], row[4]),
        row[5],
        row[6],
        bool(row[7]),
        limits_of(row[8], row[9]),
        row[10],
        row[11],
        row[12],
        row[13],
    )


def pending_of_row(row: Any) -> PendingDeployment:
    return PendingDeployment(
        row[0],
        row[1],
        Resources(row[2], row[3], row[4]),
        row[5],
        bool(row[6]),
        limits_of(row[7], row[8]),
    )


def load_running(session: Session, cluster_id: uuid.UUID) -> list[RunningDeployment]:
    return [
        running_of(row)
        for row in session.connection().execute(LOAD_RUNNING, {"cluster_id": cluster_id})
    ]


def load_awaiting(
    session: Session, running: list[RunningDeployment], given: Set[uuid.UUID]
) -> list[PendingDeployment]:
    """The queued preemptors whose victims are still leaving (`preempted_by` of `running`), but
    those in `given`."""
    ids = {run.preempted_by for run in running if run.preempted_by is not None} - given
    if not ids:
        return []
    rows = session.connection().execute(
        select(*QUEUE_COLUMNS).where(
            Deployment.id.in_(ids),
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
        )
    )
    return [pending_of_row(row) for row in rows]


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
        select(*QUEUE_COLUMNS)
        .where(
            Deployment.cluster_id == _CLUSTER,
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
            Deployment.id.not_in(bindparam("seen", expanding=True)),
            or_(_fits("fits"), ~_fits("cap"), *bands),
        )
        .order_by(*QUEUE_ORDER_BY)
        .limit(bindparam("limit", type_=Deployment.priority.type))
    )
    _FETCH_STATEMENTS[shape] = stmt
    return stmt


def _put(params: dict[str, Any], prefix: str, limit: Resources) -> None:
    params[f"{prefix}_cpu"] = limit.cpu_millis
    params[f"{prefix}_ram"] = limit.ram_millis
    params[f"{prefix}_gpu"] = limit.gpu


def fetch_relevant(
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
        pending_of_row(row) for row in session.connection().execute(_fetch_statement(flt), params)
    ]


def lower_priority_total(session: Session, cluster_id: uuid.UUID, priority: int) -> Resources:
    row = (
        session.connection()
        .execute(_LOWER_TOTAL, {"cluster_id": cluster_id, "priority": priority})
        .one()
    )
    return Resources(int(row[0]), int(row[1]), int(row[2]))


def tail_candidates(
    session: Session, cluster_id: uuid.UUID, priority: int, missing: Resources
) -> list[RunningDeployment]:
    """The candidates `reprieve.victims_in_tail` needs, lowest first: a page, rarely all of them."""
    params = {"cluster_id": cluster_id, "priority": priority}
    page = [running_of(row) for row in session.connection().execute(_TAIL_FIRST_PAGE, params)]
    end = tail_length(missing, page)
    if end is not None:
        return page[:end]
    if len(page) < _TAIL_PAGE:
        return page  # every candidate
    sums = {"cpu": missing.cpu_millis, "ram": missing.ram_millis, "gpu": missing.gpu}
    return [
        running_of(row) for row in session.connection().execute(_TAIL_EVERYTHING, params | sums)
    ]
