"""Creating deployments: validated, stamped with their arrival time once, inserted and counted
under the cluster's lock, and placed, all in one transaction. Ending them is
`deployment_lifecycle`."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.core.errors import Unprocessable, not_found
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import (
    Deployment,
    DeploymentDependency,
    DeploymentEvent,
    DeploymentStatus,
    PreemptionPolicy,
)
from app.runtimes.catalog import is_known_model
from app.scheduling import Resources
from app.services import placement
from app.services.deployment_failures import fail
from app.services.deployment_views import DeploymentView, queue_position_of
from app.services.locks import (
    COUNT_NEW,
    lock_cluster_for_new_deployment,
    lock_organization,
    refresh_locked,
)
from app.services.tenancy import Scoped, parse_id

PENDING = DeploymentStatus.pending


@dataclass(frozen=True, slots=True)
class NewDeployment:
    name: str
    model: str
    resources: Resources
    priority: int
    preemption_policy: PreemptionPolicy
    depends_on: Sequence[str]


def _unknown_dependency(message: str) -> Unprocessable:
    return Unprocessable("unknown_dependency", message, field="depends_on")


def _dependency_ids(raw: Sequence[str]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in raw:
        parsed = parse_id(value)
        if parsed is None:
            raise _unknown_dependency(f"Unknown dependency {value!r}.")
        if parsed not in ids:
            ids.append(parsed)
    return ids


async def create(
    db: AsyncSession, access: Scoped[Cluster], user_id: uuid.UUID, new: NewDeployment
) -> DeploymentView:
    # FIFO by arrival: stamped once, at entry, before any lock is waited for.
    arrived = utcnow()
    _validate(new)
    dependency_ids = _dependency_ids(new.depends_on)
    statuses: list[DeploymentStatus] = []
    if dependency_ids:
        # The lock order's first lock: no dependency can end (and miss this dependent in its
        # cascade) until this transaction commits. The cluster's follows in `_insert_counted`.
        await lock_organization(db, access.row.organization_id)
        statuses = await _dependency_statuses(db, access.row.organization_id, dependency_ids)
    unmet = sum(status != DeploymentStatus.completed for status in statuses)
    deployment = _new_deployment(access.row, user_id, new, unmet, arrived)
    cluster = await _insert_counted(db, access.row, deployment)
    _check_capacity(new, cluster)  # raising rolls the insert back
    db.add_all(
        DeploymentDependency(deployment_id=deployment.id, depends_on_id=dep, position=i)
        for i, dep in enumerate(dependency_ids)
    )
    now = utcnow()
    if any(s in (DeploymentStatus.failed, DeploymentStatus.cancelled) for s in statuses):
        await db.flush()
        await db.run_sync(fail, [deployment.id], "dependency_failed", now)
        await db.refresh(deployment)
    elif unmet == 0:
        await db.run_sync(placement.place_newcomer, cluster, deployment, now)
    await db.commit()
    return await _view_of_new(db, deployment, dependency_ids)


def _validate(new: NewDeployment) -> None:
    if not is_known_model(new.model):
        raise Unprocessable(
            "unknown_model", f"Unknown model {new.model!r}; see GET /api/v1/models.", field="model"
        )
    if new.resources.is_zero():
        raise Unprocessable(
            "validation_error", "A deployment must request some resources.", field="resources"
        )


def _check_capacity(new: NewDeployment, cluster: Cluster) -> None:
    if not new.resources.fits_in(cluster.capacity):
        raise Unprocessable(
            "exceeds_cluster_capacity",
            "The request is larger than the cluster's capacity; it could never run.",
            field="resources",
        )


def _new_deployment(
    cluster: Cluster, user_id: uuid.UUID, new: NewDeployment, unmet: int, now: datetime
) -> Deployment:
    """Every column set, none left to a default: `_insert_ready` inserts it by its values."""
    return Deployment(
        id=uuid.uuid4(),
        organization_id=cluster.organization_id,
        cluster_id=cluster.id,
        name=new.name,
        model=new.model,
        cpu_millis=new.resources.cpu_millis,
        ram_millis=new.resources.ram_millis,
        gpu=new.resources.gpu,
        priority=new.priority,
        preemption_policy=new.preemption_policy,
        status=PENDING,
        status_reason=None,
        unmet_dependencies=unmet,
        preemption_count=0,
        created_by=user_id,
        started_at=None,
        finished_at=None,
        serving_ready=None,
        serving_reason=None,
        serving_since=None,
        created_at=now,
    )


_DEPLOYMENT_COLUMNS = list(Deployment.__table__.columns)
_CREATED_EVENT = {"event_type": "created", "event_detail": {}}


def _insert_counted_statement() -> Select[*tuple[Any, ...]]:
    """PostgreSQL: lock and count (`locks.COUNT_NEW`), insert the deployment and its `created`
    event, in one statement. The inserts read the UPDATE's row, so they run after it has the
    lock, and insert nothing if the cluster is gone."""
    locked = COUNT_NEW.cte("locked")
    deployment = (
        insert(Deployment)
        .from_select(
            [c.key for c in _DEPLOYMENT_COLUMNS],
            select(
                *(bindparam(f"new_{c.key}", type_=c.type) for c in _DEPLOYMENT_COLUMNS)
            ).select_from(locked),
        )
        .returning(Deployment.id, Deployment.created_at)
        .cte("inserted")
    )
    event = DeploymentEvent.__table__.c
    created = (
        insert(DeploymentEvent)
        .from_select(
            ["deployment_id", "at", "type", "detail"],
            select(
                deployment.c.id,
                deployment.c.created_at,
                bindparam("event_type", type_=event.type.type),
                bindparam("event_detail", type_=event.detail.type),
            ),
        )
        .cte("created")
    )
    return select(*locked.c).add_cte(deployment, created)


_INSERT_COUNTED = _insert_counted_statement()


async def _insert_counted(db: AsyncSession, cluster: Cluster, deployment: Deployment) -> Cluster:
    """Lock `cluster` counting `deployment` as pending, insert it and its `created` event: one
    statement on PostgreSQL, three on SQLite (same order). `cluster` is refreshed in place as by
    `lock_cluster_for_new_deployment`; `deployment` joins the session as persistent and clean, so
    only what placement changes is flushed."""
    conn = await db.connection()
    values = {c.key: getattr(deployment, c.key) for c in _DEPLOYMENT_COLUMNS}
    if conn.dialect.name == "postgresql":
        # Prefixed: a parameter named like a column of clusters would join the UPDATE's SET.
        params = {f"new_{key}": value for key, value in values.items()}
        params |= {"cluster_id": cluster.id} | _CREATED_EVENT
        row = (await conn.execute(_INSERT_COUNTED, params)).one_or_none()
        if row is None:
            raise not_found("cluster")
        refresh_locked(cluster, row)
    else:
        await lock_cluster_for_new_deployment(db, cluster)
        await conn.execute(insert(Deployment), [values])
        created = {"deployment_id": deployment.id, "at": deployment.created_at, "type": "created"}
        await conn.execute(insert(DeploymentEvent), [created | {"detail": {}}])
    make_transient_to_detached(deployment)
    db.add(deployment)
    return cluster


async def _view_of_new(
    db: AsyncSession, deployment: Deployment, dependency_ids: list[uuid.UUID]
) -> DeploymentView:
    """Its dependencies are known; only a queued newcomer has a queue position to look up."""
    position = None
    if deployment.status == PENDING and deployment.unmet_dependencies == 0:
        position = await queue_position_of(db, deployment)
    return DeploymentView(deployment, dependency_ids, position)


async def _dependency_statuses(
    db: AsyncSession, org_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[DeploymentStatus]:
    if not ids:
        return []
    rows = (
        await db.execute(
            select(Deployment.id, Deployment.status).where(
                Deployment.id.in_(ids), Deployment.organization_id == org_id
            )
        )
    ).all()
    if len(rows) != len(ids):
        missing = sorted(set(ids) - {row[0] for row in rows})
        raise _unknown_dependency(f"Unknown dependency {missing[0]}.")
    return [row[1] for row in rows]
