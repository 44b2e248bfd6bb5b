"""Row locks for scheduling, always taken in one global order: the organization row, then its
clusters by id. Every transaction that changes allocation or dependency state follows it, so
concurrent requests from any number of processes serialize per cluster and never deadlock.

FOR NO KEY UPDATE, not FOR UPDATE: inserting a deployment or an event takes a KEY SHARE lock on the
rows it references, which FOR UPDATE would block for the whole transaction. On SQLite the clause is
ignored; every transaction there starts with BEGIN IMMEDIATE instead (see app/db/session.py).
"""

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, bindparam, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

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


# Counting a new deployment as pending takes the cluster's row lock (FOR NO KEY UPDATE, as every
# UPDATE that leaves the key alone) and returns the fresh row, all in one statement.
COUNT_NEW = (
    update(Cluster)
    .where(Cluster.id == bindparam("cluster_id"))
    .values(pending_count=Cluster.pending_count + 1)
    .returning(*Cluster.__table__.columns)
)
_ATTRIBUTES = [
    (column.key, inspect(Cluster).get_property_by_column(column).key)
    for column in Cluster.__table__.columns
]


def refresh_locked(cluster: Cluster, row: Row[Any]) -> None:
    """Load a row returned by `COUNT_NEW` into `cluster`, as a query would (nothing to flush)."""
    values = row._mapping
    for column, attribute in _ATTRIBUTES:
        set_committed_value(cluster, attribute, values[column])


async def lock_cluster_for_new_deployment(db: AsyncSession, cluster: Cluster) -> Cluster:
    """`lock_cluster` for a deployment about to be created in `cluster` (loaded by this session):
    the same row lock, taken by the UPDATE that counts the newcomer as pending, so that nothing
    else has to write the row unless the newcomer starts (a rollback undoes the count). `cluster`
    is refreshed in place."""
    conn = await db.connection()
    row = (await conn.execute(COUNT_NEW, {"cluster_id": cluster.id})).one_or_none()
    if row is None:
        raise not_found("cluster")
    refresh_locked(cluster, row)
    return cluster
