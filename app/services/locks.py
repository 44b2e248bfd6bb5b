"""Row locks for scheduling, always taken in one global order: the organization row, then its
clusters by id. Every transaction that changes allocation or dependency state follows it, so
concurrent requests from any number of processes serialize per cluster and never deadlock.

FOR NO KEY UPDATE, not FOR UPDATE: inserting a deployment or an event takes a KEY SHARE lock on the
rows it references, which FOR UPDATE would block for the whole transaction. On SQLite the clause is
ignored; every transaction there starts with BEGIN IMMEDIATE instead (see app/db/session.py).
"""

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import not_found
from app.models.cluster import Cluster
from app.models.organization import Organization


async def lock_organization(db: AsyncSession, org_id: uuid.UUID) -> None:
    """Taken by everything that follows dependencies across clusters (create with dependencies,
    complete, cancel, cluster changes), so a dependent is never created past a finished dependency
    nor missed by a cascade."""
    found = await db.scalar(
        select(Organization.id).where(Organization.id == org_id).with_for_update(key_share=True)
    )
    if found is None:
        raise not_found("organization")


async def lock_clusters(db: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Cluster]:
    """Lock clusters in id order and return them fresh from the database."""
    wanted = sorted(set(ids))
    rows = await db.scalars(
        select(Cluster)
        .where(Cluster.id.in_(wanted))
        .order_by(Cluster.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return {cluster.id: cluster for cluster in rows}


async def lock_cluster(db: AsyncSession, cluster_id: uuid.UUID) -> Cluster:
    cluster = (await lock_clusters(db, [cluster_id])).get(cluster_id)
    if cluster is None:
        raise not_found("cluster")
    return cluster
