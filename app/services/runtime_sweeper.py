"""What time does to running deployments, applied by the workers: runs that reached their
`max_runtime_seconds` are completed, protections that ended are lifted, and victims whose grace is
over leave (back to the queue, their resources freed), each in a transaction that reschedules the
cluster (so a cluster's state still changes only in transactions that run a
pass, and it is at its fixpoint between them).

Any number of processes may sweep at once: every change is made under the locks an ending or a
pass takes, after checking again that it is still due, so each run is completed once and each
protection lifted once.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.metrics import RUNTIME_ENDED
from app.db.base import utcnow
from app.models.deployment import HOLDING, Deployment, DeploymentStatus
from app.scheduling import Eviction, Resources
from app.services import placement
from app.services.deployment_lifecycle import complete_at_deadline
from app.services.locks import lock_clusters
from app.services.placement.passes import Known

Sessions = async_sessionmaker[AsyncSession]
RUNNING, PREEMPTING = DeploymentStatus.running, DeploymentStatus.preempting
SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Swept:
    completed: int
    clusters_rescheduled: int  # for ended protections
    evicted: int = 0  # victims whose grace was over


async def sweep(sessions: Sessions, batch: int = SWEEP_BATCH, now: datetime | None = None) -> Swept:
    """One round: the deadlines and the ended protections due at `now` (the present unless
    given), `batch` of each at most."""
    now = now or utcnow()
    completed = await _deadlines(sessions, now, batch)
    evicted = await _graces(sessions, now, batch)
    return Swept(completed, await _protections(sessions, now, batch), evicted)


async def _deadlines(sessions: Sessions, now: datetime, batch: int) -> int:
    async with sessions() as db:
        due = list(
            await db.scalars(
                select(Deployment.id)
                .where(Deployment.status.in_(HOLDING), Deployment.stops_at <= now)
                .order_by(Deployment.stops_at)
                .limit(batch)
            )
        )
    completed = 0
    for deployment_id in due:
        async with sessions() as db:
            deployment = await db.get(Deployment, deployment_id)
            if deployment is not None and await complete_at_deadline(db, deployment, now):
                completed += 1
    RUNTIME_ENDED.inc(completed)
    return completed


async def _protections(sessions: Sessions, now: datetime, batch: int) -> int:
    async with sessions() as db:
        clusters = list(
            await db.scalars(
                select(Deployment.cluster_id)
                .where(Deployment.status == RUNNING, Deployment.protected_until <= now)
                .distinct()
                .limit(batch)
            )
        )
    for cluster_id in sorted(clusters):
        async with sessions() as db:
            await _lift(db, cluster_id, now)
    return len(clusters)


async def _lift(db: AsyncSession, cluster_id: uuid.UUID, now: datetime) -> None:
    cluster = (await lock_clusters(db, [cluster_id])).get(cluster_id)
    if cluster is None:
        return
    lifted = await db.execute(
        update(Deployment)
        .where(
            Deployment.cluster_id == cluster_id,
            Deployment.status == RUNNING,
            Deployment.protected_until <= now,
        )
        .values(protected_until=None)
        .execution_options(synchronize_session=False)
    )
    if lifted.rowcount:  # type: ignore[attr-defined]
        await db.run_sync(placement.reschedule_sync, cluster, now, [], False)
    await db.commit()


async def _graces(sessions: Sessions, now: datetime, batch: int) -> int:
    async with sessions() as db:
        clusters = list(
            await db.scalars(
                select(Deployment.cluster_id)
                .where(Deployment.status == PREEMPTING, Deployment.evict_at <= now)
                .distinct()
                .limit(batch)
            )
        )
    evicted = 0
    for cluster_id in sorted(clusters):
        async with sessions() as db:
            evicted += await _leave(db, cluster_id, now)
    return evicted


async def _leave(db: AsyncSession, cluster_id: uuid.UUID, now: datetime) -> int:
    """The victims of this cluster whose grace is over leave, then the cluster is scheduled
    again: their preemptors start now, unless one ranked ahead of them takes the room."""
    cluster = (await lock_clusters(db, [cluster_id])).get(cluster_id)
    if cluster is None:
        return 0
    rows = (
        await db.execute(
            select(
                Deployment.id,
                Deployment.preempted_by,
                Deployment.cpu_millis,
                Deployment.ram_millis,
                Deployment.gpu,
            ).where(
                Deployment.cluster_id == cluster_id,
                Deployment.status == PREEMPTING,
                Deployment.evict_at <= now,
            )
        )
    ).all()
    if rows:
        known = Known({row.id: Resources(row.cpu_millis, row.ram_millis, row.gpu) for row in rows})
        leaving = [Eviction(row.id, row.preempted_by) for row in rows]
        await db.run_sync(placement.evict, cluster, leaving, known, now, leaving=True)
        await db.run_sync(placement.reschedule_sync, cluster, now, [], False)
    await db.commit()
    return len(rows)
