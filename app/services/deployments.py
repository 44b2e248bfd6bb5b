"""Deployments: create, complete, cancel; scheduling happens inside the same transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, Forbidden, Unprocessable
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
from app.services.locks import lock_cluster, lock_clusters, lock_organization
from app.services.pagination import Page, paginate
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


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment: Deployment
    depends_on: list[uuid.UUID]
    queue_position: int | None

    @property
    def status_reason(self) -> str | None:
        d = self.deployment
        if d.status != PENDING:
            return d.status_reason
        if d.unmet_dependencies:
            return "waiting_for_dependencies"
        return "preempted" if d.status_reason == "preempted" else "insufficient_resources"


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
    org_id = access.row.organization_id
    if dependency_ids:
        await lock_organization(db, org_id)
    cluster = await lock_cluster(db, access.row.id)
    if not new.resources.fits_in(cluster.capacity):
        raise Unprocessable(
            "exceeds_cluster_capacity",
            "The request is larger than the cluster's capacity; it could never run.",
            field="resources",
        )
    statuses = await _dependency_statuses(db, org_id, dependency_ids)
    now = utcnow()
    deployment = Deployment(
        id=uuid.uuid4(),
        organization_id=org_id,
        cluster_id=cluster.id,
        name=new.name,
        model=new.model,
        cpu_millis=new.resources.cpu_millis,
        ram_millis=new.resources.ram_millis,
        gpu=new.resources.gpu,
        priority=new.priority,
        preemption_policy=new.preemption_policy,
        status=PENDING,
        unmet_dependencies=sum(s != DeploymentStatus.completed for s in statuses),
        preemption_count=0,
        created_by=user_id,
        created_at=now,
    )
    db.add(deployment)
    db.add_all(
        DeploymentDependency(deployment_id=deployment.id, depends_on_id=dep, position=i)
        for i, dep in enumerate(dependency_ids)
    )
    placement.record(db.sync_session, deployment.id, "created", now)
    cluster.pending_count += 1
    dependency_failed = any(
        s in (DeploymentStatus.failed, DeploymentStatus.cancelled) for s in statuses
    )
    if dependency_failed:
        await db.flush()
        await db.run_sync(placement.fail, [deployment.id], "dependency_failed", now)
        await db.refresh(deployment)
    elif deployment.unmet_dependencies == 0:
        await db.run_sync(placement.place_newcomer, cluster, deployment, now)
    await db.commit()
    return (await views(db, [deployment]))[0]


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


# -- reading ---------------------------------------------------------------------------------


async def views(db: AsyncSession, deployments: Sequence[Deployment]) -> list[DeploymentView]:
    """Attach `depends_on` and `queue_position` to a page of deployments in two queries."""
    if not deployments:
        return []
    ids = [d.id for d in deployments]
    edges = await db.execute(
        select(DeploymentDependency.deployment_id, DeploymentDependency.depends_on_id)
        .where(DeploymentDependency.deployment_id.in_(ids))
        .order_by(DeploymentDependency.deployment_id, DeploymentDependency.position)
    )
    depends: dict[uuid.UUID, list[uuid.UUID]] = {}
    for deployment_id, depends_on_id in edges:
        depends.setdefault(deployment_id, []).append(depends_on_id)
    positions = await _queue_positions(
        db, [d for d in deployments if d.status == PENDING and d.unmet_dependencies == 0]
    )
    return [DeploymentView(d, depends.get(d.id, []), positions.get(d.id)) for d in deployments]


async def _queue_positions(db: AsyncSession, queued: Sequence[Deployment]) -> dict[uuid.UUID, int]:
    """Rank among the cluster's queue in scheduling order: one count per deployment, all in one
    query, each a range scan of the queue index."""
    if not queued:
        return {}
    ahead = Deployment.__table__.alias("ahead")
    subject = Deployment.__table__.alias("subject")
    rank = (
        select(func.count())
        .select_from(ahead)
        .where(
            ahead.c.cluster_id == subject.c.cluster_id,
            ahead.c.status == PENDING.value,
            ahead.c.unmet_dependencies == 0,
            or_(
                ahead.c.priority > subject.c.priority,
                and_(
                    ahead.c.priority == subject.c.priority,
                    or_(
                        ahead.c.created_at < subject.c.created_at,
                        and_(ahead.c.created_at == subject.c.created_at, ahead.c.id < subject.c.id),
                    ),
                ),
            ),
        )
        .scalar_subquery()
    )
    rows = await db.execute(
        select(subject.c.id, rank).where(subject.c.id.in_([d.id for d in queued]))
    )
    return {row[0]: int(row[1]) + 1 for row in rows}


def _listing(stmt: Select[Deployment], status: DeploymentStatus | None) -> Select[Deployment]:
    if status is not None:
        stmt = stmt.where(Deployment.status == status)
    return stmt.order_by(Deployment.created_at, Deployment.id)


async def list_for_cluster(
    db: AsyncSession, access: Scoped[Cluster], status: DeploymentStatus | None, page: Page
) -> tuple[list[DeploymentView], int]:
    stmt = _listing(select(Deployment).where(Deployment.cluster_id == access.row.id), status)
    rows, total = await paginate(db, stmt, page)
    return await views(db, [row[0] for row in rows]), total


async def list_for_org(
    db: AsyncSession,
    org_id: uuid.UUID,
    status: DeploymentStatus | None,
    cluster_id: uuid.UUID | None,
    page: Page,
) -> tuple[list[DeploymentView], int]:
    stmt = select(Deployment).where(Deployment.organization_id == org_id)
    if cluster_id is not None:
        stmt = stmt.where(Deployment.cluster_id == cluster_id)
    rows, total = await paginate(db, _listing(stmt, status), page)
    return await views(db, [row[0] for row in rows]), total


async def events(
    db: AsyncSession, access: DeploymentAccess, page: Page
) -> tuple[list[DeploymentEvent], int]:
    stmt = (
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == access.row.id)
        .order_by(DeploymentEvent.at, DeploymentEvent.id)
    )
    rows, total = await paginate(db, stmt, page)
    return [row[0] for row in rows], total


async def count_active(db: AsyncSession, org_id: uuid.UUID) -> int:
    return (
        await db.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(
                Deployment.organization_id == org_id,
                Deployment.status.in_([PENDING, RUNNING]),
            )
        )
        or 0
    )


async def count_deployments_by_status(db: AsyncSession) -> dict[DeploymentStatus, int]:
    rows = await db.execute(select(Deployment.status, func.count()).group_by(Deployment.status))
    return {row[0]: row[1] for row in rows}
