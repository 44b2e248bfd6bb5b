"""Clusters: pools of capacity owned by one organization. Callers have checked the role (the
access dependencies of app/api/deps.py)."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, Unprocessable
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import Deployment
from app.models.organization import Organization
from app.scheduling import DEFAULT_STRATEGY, Resources, UnknownStrategy, get_strategy
from app.services import audit, placement, public_callers
from app.services.locks import lock_cluster, lock_organization
from app.services.pagination import Page, paginate
from app.services.tenancy import Scoped

ClusterAccess = Scoped[Cluster]


def _check_strategy(name: str) -> str:
    try:
        get_strategy(name)
    except UnknownStrategy:
        raise Unprocessable(
            "unknown_strategy",
            f"Unknown preemption strategy {name!r}; see GET /api/v1/scheduling/strategies.",
            field="preemption_strategy",
        ) from None
    return name


def _name_taken() -> Conflict:
    return Conflict("cluster_name_taken", "This organization already has a cluster of that name.")


async def _raise_if_name_taken(
    db: AsyncSession, org_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Cluster.id).where(Cluster.organization_id == org_id, Cluster.name == name)
    if except_id is not None:
        stmt = stmt.where(Cluster.id != except_id)
    if await db.scalar(stmt) is not None:
        raise _name_taken()


def _summary(cluster: Cluster) -> dict[str, Any]:
    """What the audit log keeps of a cluster: its settings, in the contract's units."""
    capacity = cluster.capacity
    return {
        "name": cluster.name,
        "resources": {
            "cpu": capacity.cpu_millis / 1000,
            "ram_gb": capacity.ram_millis / 1000,
            "gpu": capacity.gpu,
        },
        "preemption_strategy": cluster.preemption_strategy,
        "preemption_grace_seconds": cluster.preemption_grace_seconds,
    }


async def _commit_unless_name_taken(db: AsyncSession) -> None:
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        if "uq_clusters_organization_id_name" in str(exc.orig) or "UNIQUE" in str(exc.orig):
            raise _name_taken() from None
        raise


async def create(
    db: AsyncSession,
    access: Scoped[Organization],
    name: str,
    capacity: Resources,
    strategy: str | None,
    grace_seconds: int = 0,
) -> ClusterAccess:
    strategy = _check_strategy(strategy or DEFAULT_STRATEGY)
    await _raise_if_name_taken(db, access.row.id, name)
    cluster = Cluster(
        organization_id=access.row.id,
        name=name,
        preemption_strategy=strategy,
        allocated_cpu_millis=0,
        allocated_ram_millis=0,
        allocated_gpu=0,
        pending_count=0,
        running_count=0,
        preempting_count=0,
        preemption_grace_seconds=grace_seconds,
    )
    cluster.capacity = capacity
    cluster.id = uuid.uuid4()
    db.add(cluster)
    audit.record(
        db, access.row.id, "cluster.created", ("cluster", cluster.id), after=_summary(cluster)
    )
    await _commit_unless_name_taken(db)
    return Scoped(row=cluster, role=access.role, user_id=access.user_id)


async def list_for_org(
    db: AsyncSession, access: Scoped[Organization], page: Page
) -> tuple[list[Cluster], int]:
    stmt = (
        select(Cluster)
        .where(Cluster.organization_id == access.row.id)
        .order_by(Cluster.created_at, Cluster.id)
    )
    rows, total = await paginate(db, stmt, page)
    return [row[0] for row in rows], total


async def update(
    db: AsyncSession,
    access: ClusterAccess,
    name: str | None,
    capacity: Resources | None,
    strategy: str | None,
    grace_seconds: int | None = None,
) -> ClusterAccess:
    """Change any of name, capacity, strategy and grace, then re-run scheduling: growth starts
    what now fits; pending deployments bigger than the new capacity fail (and their
    dependents)."""
    if strategy is not None:
        _check_strategy(strategy)
    await lock_organization(db, access.row.organization_id)
    cluster = await lock_cluster(db, access.row.id)
    before = _summary(cluster)
    if name is not None and name != cluster.name:
        await _raise_if_name_taken(db, cluster.organization_id, name, except_id=cluster.id)
        cluster.name = name
    if capacity is not None:
        held = cluster.allocated
        if cluster.preempting_count:  # and what is reserved for preemptors waiting for victims
            held = held + await db.run_sync(placement.reserved_total, cluster.id)
        if not held.fits_in(capacity):
            raise Conflict(
                "capacity_below_allocated",
                "The new capacity is below what running deployments already use (or what is "
                "reserved for preemptors waiting for their victims to leave).",
            )
        cluster.capacity = capacity
    if strategy is not None:
        cluster.preemption_strategy = strategy
    if grace_seconds is not None:
        cluster.preemption_grace_seconds = grace_seconds
    now = utcnow()
    audit.record(
        db,
        cluster.organization_id,
        "cluster.updated",
        ("cluster", cluster.id),
        before=before,
        after=_summary(cluster),
    )
    await db.run_sync(placement.reschedule_sync, cluster, now, [], False)
    await _commit_unless_name_taken(db)
    await db.refresh(cluster)
    return Scoped(row=cluster, role=access.role, user_id=access.user_id)


async def delete(db: AsyncSession, access: ClusterAccess) -> None:
    """Only an idle cluster can go; its finished deployments go with it."""
    await lock_organization(db, access.row.organization_id)
    cluster = await lock_cluster(db, access.row.id)
    if cluster.pending_count or cluster.running_count or cluster.preempting_count:
        raise Conflict("cluster_in_use", "The cluster still has pending or running deployments.")
    audit.record(
        db, cluster.organization_id, "cluster.deleted", ("cluster", cluster.id), _summary(cluster)
    )
    deployment_ids = list(
        await db.scalars(select(Deployment.id).where(Deployment.cluster_id == cluster.id))
    )
    await db.delete(cluster)
    await db.flush()
    await public_callers.delete_for(db, deployment_ids)
    await db.commit()
