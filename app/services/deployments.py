"""Deployments: create, complete, cancel; scheduling happens inside the same transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.core.errors import Conflict, Forbidden, Unprocessable, not_found
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import (
    Deployment,
    DeploymentDependency,
    DeploymentEvent,
    DeploymentStatus,
    PreemptionPolicy,
)
from app.models.organization import Role
from app.runtimes.catalog import is_known_model
from app.scheduling import PendingDeployment, Resources
from app.services import placement
from app.services.deployment_views import (
    DeploymentView,
    queue_position_of,
    views,
)
from app.services.locks import (
    COUNT_NEW,
    lock_cluster_for_new_deployment,
    lock_clusters,
    lock_organization,
    refresh_locked,
)
from app.services.tenancy import Scoped, parse_id

PENDING, RUNNING = DeploymentStatus.pending, DeploymentStatus.running
DeploymentAccess = Scoped[Deployment]


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
    access.require(Role.developer)
    if not is_known_model(new.model):
        raise Unprocessable(
            "unknown_model", f"Unknown model {new.model!r}; see GET /api/v1/models.", field="model"
        )
    if new.resources.is_zero():
        raise Unprocessable(
            "validation_error", "A deployment must request some resources.", field="resources"
        )
    dependency_ids = _dependency_ids(new.depends_on)
    if not dependency_ids:
        return await _create_ready(db, access.row, user_id, new)
    org_id = access.row.organization_id
    await lock_organization(db, org_id)
    cluster = await lock_cluster_for_new_deployment(db, access.row)  # counts it as pending
    _check_capacity(new, cluster)
    statuses = await _dependency_statuses(db, org_id, dependency_ids)
    now = utcnow()
    unmet = sum(s != DeploymentStatus.completed for s in statuses)
    deployment = _new_deployment(cluster, user_id, new, unmet, now)
    db.add(deployment)
    db.add_all(
        DeploymentDependency(deployment_id=deployment.id, depends_on_id=dep, position=i)
        for i, dep in enumerate(dependency_ids)
    )
    placement.record(db.sync_session, deployment.id, "created", now)
    if any(s in (DeploymentStatus.failed, DeploymentStatus.cancelled) for s in statuses):
        await db.flush()
        await db.run_sync(placement.fail, [deployment.id], "dependency_failed", now)
        await db.refresh(deployment)
    elif deployment.unmet_dependencies == 0:
        await db.run_sync(placement.place_newcomer, cluster, deployment, now)
    await db.commit()
    return await _view_of_new(db, deployment, dependency_ids)


async def _create_ready(
    db: AsyncSession, cluster: Cluster, user_id: uuid.UUID, new: NewDeployment
) -> DeploymentView:
    """A deployment without dependencies: counted, inserted with its `created` event and the
    cluster locked in one statement (`_insert_ready`), then placed. Its `created_at` is therefore
    read before the lock is granted; what placement does (`started_at`, events) is stamped after."""
    deployment = _new_deployment(cluster, user_id, new, 0, utcnow())
    cluster = await _insert_ready(db, cluster, deployment)
    _check_capacity(new, cluster)  # raising rolls the insert back
    await db.run_sync(placement.place_newcomer, cluster, deployment, utcnow())
    await db.commit()
    return await _view_of_new(db, deployment, [])


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
        created_at=now,
    )


_DEPLOYMENT_COLUMNS = list(Deployment.__table__.columns)
_CREATED_EVENT = {"event_type": "created", "event_detail": {}}


def _insert_ready_statement() -> Select[*tuple[Any, ...]]:
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


_INSERT_READY = _insert_ready_statement()


async def _insert_ready(db: AsyncSession, cluster: Cluster, deployment: Deployment) -> Cluster:
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
        row = (await conn.execute(_INSERT_READY, params)).one_or_none()
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


def _authorize_action(access: DeploymentAccess) -> None:
    """Developers act on their own deployments; admins on all."""
    access.require(Role.developer)
    if access.role != Role.admin and access.row.created_by != access.user_id:
        raise Forbidden(message="Developers may only act on their own deployments.")


async def complete(db: AsyncSession, access: DeploymentAccess) -> DeploymentView:
    return await _finish(db, access, DeploymentStatus.completed)


async def cancel(db: AsyncSession, access: DeploymentAccess) -> DeploymentView:
    return await _finish(db, access, DeploymentStatus.cancelled)


async def _finish(
    db: AsyncSession, access: DeploymentAccess, outcome: DeploymentStatus
) -> DeploymentView:
    _authorize_action(access)
    org_id, deployment_id = access.row.organization_id, access.row.id
    await lock_organization(db, org_id)
    dependents = (
        await db.execute(
            select(Deployment.id, Deployment.cluster_id)
            .join(DeploymentDependency, DeploymentDependency.deployment_id == Deployment.id)
            .where(
                DeploymentDependency.depends_on_id == deployment_id, Deployment.status == PENDING
            )
        )
    ).all()
    clusters = await lock_clusters(
        db, {access.row.cluster_id} | {cluster_id for _, cluster_id in dependents}
    )
    deployment = await db.get(Deployment, deployment_id, populate_existing=True)
    allowed = (RUNNING,) if outcome == DeploymentStatus.completed else (PENDING, RUNNING)
    if deployment is None or deployment.status not in allowed:
        current = deployment.status if deployment else "missing"
        raise Conflict("invalid_transition", f"A {current} deployment cannot become {outcome}.")
    now = utcnow()
    was_running = deployment.status == RUNNING
    own = clusters[deployment.cluster_id]
    if was_running:
        own.allocated = own.allocated - deployment.resources
        own.running_count -= 1
    else:
        own.pending_count -= 1
    deployment.status, deployment.status_reason, deployment.finished_at = outcome, None, now
    await db.flush()
    await db.run_sync(placement.end_predictions, [deployment.id], now)
    if outcome == DeploymentStatus.completed:
        placement.record(db.sync_session, deployment.id, "completed", now)
    else:
        placement.record(db.sync_session, deployment.id, "cancelled", now, by=str(access.user_id))
    dependent_ids = [dependent_id for dependent_id, _ in dependents]
    if outcome == DeploymentStatus.cancelled:
        await db.run_sync(placement.fail, dependent_ids, "dependency_failed", now)
        if was_running:
            await db.run_sync(placement.reschedule_sync, own, now, [], False)
    else:
        await _release_dependents(db, dependent_ids, clusters, own, now)
    await db.commit()
    return (await views(db, [deployment]))[0]


async def _release_dependents(
    db: AsyncSession,
    dependent_ids: list[uuid.UUID],
    clusters: dict[uuid.UUID, Cluster],
    own: Cluster,
    now: datetime,
) -> None:
    """One dependency fewer for each dependent; those with none left join their cluster's queue.
    Then schedule every touched cluster, in id order: the own one because room appeared."""
    released: dict[uuid.UUID, list[PendingDeployment]] = {}
    if dependent_ids:
        await db.flush()
        rows = (
            await db.execute(
                update(Deployment)
                .where(Deployment.id.in_(dependent_ids))
                .values(unmet_dependencies=Deployment.unmet_dependencies - 1)
                .returning(
                    Deployment.id,
                    Deployment.cluster_id,
                    Deployment.unmet_dependencies,
                    Deployment.priority,
                    Deployment.cpu_millis,
                    Deployment.ram_millis,
                    Deployment.gpu,
                    Deployment.created_at,
                    Deployment.preemption_policy,
                )
            )
        ).all()
        for row in rows:
            if row.unmet_dependencies == 0:
                released.setdefault(row.cluster_id, []).append(placement.pending_of(row))
    for cluster_id in sorted({own.id, *released}):
        await db.run_sync(
            placement.reschedule_sync,
            clusters[cluster_id],
            now,
            released.get(cluster_id, []),
            cluster_id != own.id,
        )
