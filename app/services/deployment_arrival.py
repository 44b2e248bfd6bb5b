"""A new deployment's arrival: the cluster's lock, the count, the row and its events, and on the
common path its start, in one statement on PostgreSQL.

A cluster is at its fixpoint between transactions (nothing pending can act), so a newcomer whose
dependencies are met and that fits in what is free simply starts: no pass, no other row read. The
statement decides that under the row lock it takes, and writes it all: the cluster's counters and
allocation, the deployment `running` (else `pending`), its `created` (and `scheduled`) event. The
lock is then held only for that statement and the commit, which is what bounds creations per
second on one cluster. A newcomer that does not fit is counted as pending and placed by
`placement.place_newcomer` (preemption), as on SQLite, where the same steps are three statements
and the start is placement's.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.core.errors import not_found
from app.core.metrics import SCHEDULING_DECISIONS
from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentEvent, DeploymentStatus
from app.services.locks import lock_cluster_for_new_deployment, refresh_locked

_DEPLOYMENT_COLUMNS = list(Deployment.__table__.columns)
_EVENT = DeploymentEvent.__table__.c
_NO_DETAIL: dict[str, Any] = {}
_RESOURCES = ("cpu_millis", "ram_millis", "gpu")


def _new(column: str) -> Any:
    """The newcomer's value of `column`, bound by name (prefixed: a parameter named like a
    column of clusters would join the UPDATE's SET)."""
    return bindparam(f"new_{column}", type_=Deployment.__table__.c[column].type)


def _event(deployment: Any, kind: str, at: Any, *where: Any) -> Any:
    """The insert of a `kind` event of the inserted `deployment` at `at`, where `where` holds."""
    values = select(
        deployment.c.id,
        at,
        literal(kind, _EVENT.type.type),
        bindparam("no_detail", type_=_EVENT.detail.type),
    ).where(*where)
    return insert(DeploymentEvent).from_select(["deployment_id", "at", "type", "detail"], values)


def _arrival_statement() -> Select[Any]:
    """Lock the cluster (FOR NO KEY UPDATE, as any UPDATE that leaves the key alone) and decide
    whether the newcomer starts (`may_start`: its dependencies are met; and it fits); count it,
    insert it and its events. Everything after the first CTE reads its row, so it runs after the
    lock is granted and writes nothing if the cluster is gone."""
    capacity = Cluster.__table__.c
    fits = and_(
        bindparam("may_start", type_=Boolean),
        *(capacity[f"capacity_{r}"] - _allocated(r) >= _new(r) for r in _RESOURCES),
    )
    target = (
        select(Cluster.id, fits.label("starts"))
        .where(Cluster.id == bindparam("cluster_id"))
        .with_for_update(key_share=True)
        .cte("target")
    )
    starts = target.c.starts
    counted = (
        update(Cluster)
        .where(Cluster.id == target.c.id)
        .values(
            pending_count=Cluster.pending_count + case((starts, 0), else_=1),
            running_count=Cluster.running_count + case((starts, 1), else_=0),
            **{
                f"allocated_{r}": _allocated(r) + case((starts, _new(r)), else_=0)
                for r in _RESOURCES
            },
        )
        .returning(*Cluster.__table__.columns, starts.label("started"))
        .cte("counted")
    )
    running = bindparam("running", type_=Deployment.__table__.c.status.type)
    # Started when the lock was granted, on the app's clock: `now` plus the statement's wait.
    waited = func.clock_timestamp() - func.statement_timestamp()
    started_at = case((counted.c.started, _new("started_at") + waited), else_=None)
    decided = {"status": case((counted.c.started, running), else_=_new("status"))}
    decided["started_at"] = started_at
    deployment = (
        insert(Deployment)
        .from_select(
            [c.key for c in _DEPLOYMENT_COLUMNS],
            select(*(decided.get(c.key, _new(c.key)) for c in _DEPLOYMENT_COLUMNS)).select_from(
                counted
            ),
        )
        .returning(Deployment.id, Deployment.created_at, Deployment.started_at)
        .cte("inserted")
    )
    created = _event(deployment, "created", deployment.c.created_at).cte("created")
    started = deployment.c.started_at
    scheduled = _event(deployment, "scheduled", started, started.is_not(None)).cte("scheduled")
    both = counted.join(deployment, true())  # one row each, or none if the cluster is gone
    answer = select(*counted.c, started.label("started_at")).select_from(both)
    return answer.add_cte(deployment, created, scheduled)


def _allocated(resource: str) -> Any:
    return Cluster.__table__.c[f"allocated_{resource}"]


_ARRIVAL = _arrival_statement()


async def arrive(
    db: AsyncSession, cluster: Cluster, deployment: Deployment, may_start: bool, now: datetime
) -> bool:
    """Lock `cluster` and insert `deployment` (pending as built, with its `created` event),
    counted; on PostgreSQL also start it when `may_start` and it fits (at `now`, stamped before
    the lock, plus the time the lock was waited for). Whether it started. `cluster` is refreshed
    in place as by `lock_cluster_for_new_deployment`; `deployment` joins the session as
    persistent and clean, so only what placement changes later is flushed."""
    conn = await db.connection()
    values = {c.key: getattr(deployment, c.key) for c in _DEPLOYMENT_COLUMNS}
    started, started_at = False, None
    if conn.dialect.name == "postgresql":
        params = {f"new_{key}": value for key, value in values.items()}
        params |= {"cluster_id": cluster.id, "may_start": may_start, "no_detail": _NO_DETAIL}
        params |= {"running": DeploymentStatus.running, "new_started_at": now}
        row = (await conn.execute(_ARRIVAL, params)).one_or_none()
        if row is None:
            raise not_found("cluster")
        refresh_locked(cluster, row)
        started = bool(row.started)
        started_at = row.started_at
    else:
        await lock_cluster_for_new_deployment(db, cluster)
        await conn.execute(insert(Deployment), [values])
        event = {"deployment_id": deployment.id, "at": deployment.created_at, "type": "created"}
        await conn.execute(insert(DeploymentEvent), [event | {"detail": _NO_DETAIL}])
    if started:
        deployment.status, deployment.started_at = DeploymentStatus.running, started_at
        SCHEDULING_DECISIONS.labels("started").inc()
    make_transient_to_detached(deployment)
    db.add(deployment)
    return started
