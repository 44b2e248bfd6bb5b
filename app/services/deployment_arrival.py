"""A new deployment's arrival on its cluster: the row lock, the count, the row and its events, and
on the common path its start, in one statement on PostgreSQL.

A cluster is at its fixpoint between transactions (nothing pending can act), so a newcomer whose
dependencies are met and that fits in what is free simply starts: no pass, no other row read.
When the cluster as loaded (without a lock) says it fits, one statement tries exactly that: an
UPDATE of the cluster guarded by the fit (PostgreSQL evaluates the guard again on the latest
committed row once it has the lock), and from its row the deployment inserted `running` with its
`created` and `scheduled` events. Otherwise, or if the guard failed, the UPDATE that counts the
newcomer as pending takes the lock and returns the latest row, with the deployment and its
`created` event in the same statement; if it fits on that row after all, one more statement
starts it under the held lock; if not, `placement.place_newcomer` decides (preemption). The fit is
never computed beside a lock in a CTE that reads the row: such a read saw a stale allocation under
concurrent creations (an over-allocated GPU, caught by the many-process books test). On SQLite the
arrival is three statements and the start is placement's.
"""

from typing import Any

from sqlalchemy import Interval, Select, bindparam, func, insert, literal, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.core.errors import not_found
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentEvent, DeploymentStatus
from app.services.decision_metrics import count_decisions, first_starts
from app.services.locks import COUNT_NEW, lock_cluster_for_new_deployment, refresh_locked
from app.services.placement.newcomer import deployment_run

_DEPLOYMENT_COLUMNS = list(Deployment.__table__.columns)
# Null in every new deployment until it starts or is preempted: left to their default by the
# arrival statements, which are shorter for it (their cache key is computed at every execution).
_SET_LATER = {"protected_until", "stops_at", "evict_at", "preempted_by"}
_ARRIVING = [c for c in _DEPLOYMENT_COLUMNS if c.key not in _SET_LATER]
_STARTING = [c for c in _DEPLOYMENT_COLUMNS if c.key not in {"evict_at", "preempted_by"}]
_EVENT = DeploymentEvent.__table__.c
_NO_DETAIL: dict[str, Any] = {}
_RESOURCES = ("cpu_millis", "ram_millis", "gpu")
RUNNING = DeploymentStatus.running


def _event(deployment: Any, kind: str, at: Any) -> Any:
    """The insert of a `kind` event at `at` for the deployment row of the CTE `deployment`."""
    values = select(
        deployment.c.id,
        at,
        literal(kind, _EVENT.type.type),
        bindparam("no_detail", type_=_EVENT.detail.type),
    )
    return insert(DeploymentEvent).from_select(["deployment_id", "at", "type", "detail"], values)


def _arrival_statement() -> Select[Any]:
    """Lock and count (`locks.COUNT_NEW`), insert the deployment and its `created` event. The
    inserts read the UPDATE's row, so they run after it has the lock, and insert nothing if the
    cluster is gone. Parameters of the deployment are prefixed `new_`: one named like a column of
    clusters would join the UPDATE's SET."""
    locked = COUNT_NEW.cte("locked")
    deployment = (
        insert(Deployment)
        .from_select(
            [c.key for c in _ARRIVING],
            select(*(_new(c.key) for c in _ARRIVING)).select_from(locked),
        )
        .returning(Deployment.id, Deployment.created_at)
        .cte("inserted")
    )
    created = _event(deployment, "created", deployment.c.created_at).cte("created")
    return select(*locked.c).add_cte(deployment, created)


def _start_statement() -> Select[Any]:
    """Start the deployment just inserted (pending) on its locked cluster: the row, the
    cluster's counters and allocation, the `scheduled` event. Parameters are prefixed `start_`,
    none named like a column of either UPDATE."""
    started = (
        update(Deployment)
        .where(Deployment.id == bindparam("start_deployment"))
        .values(
            status=bindparam("start_status"),
            started_at=bindparam("start_now"),
            protected_until=bindparam("start_protected_until"),
            stops_at=bindparam("start_stops_at"),
        )
        .returning(Deployment.id)
        .cte("started")
    )
    table = Cluster.__table__.c
    counted = (
        update(Cluster)
        .where(Cluster.id == bindparam("start_cluster"))
        .values(
            pending_count=Cluster.pending_count - 1,
            running_count=Cluster.running_count + 1,
            **{f"allocated_{r}": table[f"allocated_{r}"] + _needed(r) for r in _RESOURCES},
        )
        .returning(*Cluster.__table__.columns)
        .cte("counted")
    )
    scheduled = _event(started, "scheduled", bindparam("start_now")).cte("scheduled")
    return select(*counted.c).add_cte(started, scheduled)


def _needed(resource: str) -> Any:
    return bindparam(f"start_{resource}", type_=Deployment.__table__.c[resource].type)


def _started_arrival_statement() -> Select[Any]:
    """The common path in one statement: count the newcomer as running on its cluster, and insert
    it `running` with its `created` and `scheduled` events, if it fits. The fit is the UPDATE's
    WHERE, which PostgreSQL evaluates again on the latest committed row after waiting for the
    row lock: no row is answered (nothing written, the row not kept locked) if it no longer fits,
    or if the cluster is gone. It starts when the lock was granted, on the app's clock: `now`,
    stamped before the statement, plus the time the statement waited."""
    table = Cluster.__table__.c
    counted = (
        update(Cluster)
        .where(
            Cluster.id == bindparam("cluster_id"),
            # While victims are leaving, room is reserved that the row does not show.
            Cluster.preempting_count == 0,
            *(table[f"capacity_{r}"] - table[f"allocated_{r}"] >= _needed(r) for r in _RESOURCES),
        )
        .values(
            running_count=Cluster.running_count + 1,
            **{f"allocated_{r}": table[f"allocated_{r}"] + _needed(r) for r in _RESOURCES},
        )
        # How long the statement waited for the lock, read once: clock_timestamp() is volatile.
        .returning(
            *Cluster.__table__.columns,
            (func.clock_timestamp() - func.statement_timestamp()).label("waited"),
        )
        .cte("counted")
    )
    columns = Deployment.__table__.c
    started_at = bindparam("start_now", type_=columns.started_at.type) + counted.c.waited
    decided = {
        "status": bindparam("start_status", type_=columns.status.type),
        "started_at": started_at,
        # Each run's protection and deadline count from its start (NULL + a time is NULL).
        "protected_until": started_at + bindparam("start_min_runtime", type_=Interval()),
        "stops_at": started_at + bindparam("start_max_runtime", type_=Interval()),
    }
    values = (decided.get(c.key, _new(c.key)) for c in _STARTING)
    deployment = (
        insert(Deployment)
        .from_select([c.key for c in _STARTING], select(*values).select_from(counted))
        .returning(
            Deployment.id,
            Deployment.created_at,
            Deployment.started_at,
            Deployment.protected_until,
            Deployment.stops_at,
        )
        .cte("inserted")
    )
    created = _event(deployment, "created", deployment.c.created_at).cte("created")
    scheduled = _event(deployment, "scheduled", deployment.c.started_at).cte("scheduled")
    both = counted.join(deployment, true())  # one row each, or none
    answer = select(
        *counted.c,
        deployment.c.started_at.label("started_at"),
        deployment.c.protected_until.label("new_protected_until"),
        deployment.c.stops_at.label("new_stops_at"),
    ).select_from(both)
    return answer.add_cte(deployment, created, scheduled)


def _new(column: str) -> Any:
    return bindparam(f"new_{column}", type_=Deployment.__table__.c[column].type)


_ARRIVAL, _START = _arrival_statement(), _start_statement()
_STARTED_ARRIVAL = _started_arrival_statement()


async def arrive(
    db: AsyncSession, cluster: Cluster, deployment: Deployment, may_start: bool
) -> bool:
    """Lock `cluster` and insert `deployment` (pending as built, with its `created` event),
    counted; on PostgreSQL also start it when `may_start` (its dependencies are met) and it fits.
    Whether it started. `cluster` is refreshed in place as by `lock_cluster_for_new_deployment`;
    `deployment` joins the session as persistent and clean, so only what placement changes
    later is flushed."""
    conn = await db.connection()
    values = {c.key: getattr(deployment, c.key) for c in _DEPLOYMENT_COLUMNS}
    started = False
    if conn.dialect.name == "postgresql":
        params = {f"new_{key}": value for key, value in values.items()}
        params |= {"cluster_id": cluster.id, "no_detail": _NO_DETAIL}
        # The row loaded without a lock says whether it probably fits; the statement decides.
        if may_start and _fits_outright(deployment, cluster):
            started = await _arrive_started(db, cluster, deployment, params)
        if not started:
            row = (await conn.execute(_ARRIVAL, params)).one_or_none()
            if row is None:
                raise not_found("cluster")
            refresh_locked(cluster, row)
            started = may_start and _fits_outright(deployment, cluster)
            if started:
                await _start(db, cluster, deployment)
    else:
        await lock_cluster_for_new_deployment(db, cluster)
        await conn.execute(insert(Deployment), [values])
        event = {"deployment_id": deployment.id, "at": deployment.created_at, "type": "created"}
        await conn.execute(insert(DeploymentEvent), [event | {"detail": _NO_DETAIL}])
    make_transient_to_detached(deployment)
    db.add(deployment)
    return started


def _fits_outright(deployment: Deployment, cluster: Cluster) -> bool:
    """It fits in what the row shows free, and no room is reserved beside it."""
    return cluster.preempting_count == 0 and deployment.resources.fits_in(cluster.available)


async def _arrive_started(
    db: AsyncSession, cluster: Cluster, deployment: Deployment, params: dict[str, Any]
) -> bool:
    """The one-statement arrival of a newcomer that fits; False (nothing written) if it does
    not fit on the latest row."""
    needed = deployment.resources
    params = params | {f"start_{r}": getattr(needed, r) for r in _RESOURCES}
    limits = deployment.limits
    params |= {"start_status": RUNNING, "start_now": utcnow()}
    params |= {"start_min_runtime": limits.min_runtime, "start_max_runtime": limits.max_runtime}
    session = db.sync_session
    row = (await (await db.connection()).execute(_STARTED_ARRIVAL, params)).one_or_none()
    if row is None:
        return False
    refresh_locked(cluster, row)
    deployment.status, deployment.started_at = RUNNING, row.started_at
    deployment.protected_until, deployment.stops_at = row.new_protected_until, row.new_stops_at
    count_decisions(session, "started")
    first_starts(session, [deployment.created_at], row.started_at)
    return True


async def _start(db: AsyncSession, cluster: Cluster, deployment: Deployment) -> None:
    """The start under the lock already held, for a newcomer that fits on the locked row when the
    guarded attempt was not made (the row as loaded looked full) or found no room then; as
    `place_newcomer` would make it."""
    now = utcnow()
    needed = deployment.resources
    run = deployment_run(deployment, now)
    params: dict[str, Any] = {"start_deployment": deployment.id, "start_cluster": cluster.id}
    params |= {"start_protected_until": run.protected_until, "start_stops_at": run.stops_at}
    params |= {"start_status": RUNNING, "start_now": now, "no_detail": _NO_DETAIL}
    params |= {f"start_{r}": getattr(needed, r) for r in _RESOURCES}
    conn = await db.connection()
    refresh_locked(cluster, (await conn.execute(_START, params)).one())
    deployment.status, deployment.started_at = RUNNING, now  # clean once made detached
    deployment.protected_until, deployment.stops_at = run.protected_until, run.stops_at
    count_decisions(db.sync_session, "started")
    first_starts(db.sync_session, [deployment.created_at], now)
