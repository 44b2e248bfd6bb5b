"""What time does to running deployments, applied by the workers: runs that reached their
`max_runtime_seconds` are completed, and protections that ended are lifted, each in a transaction
that reschedules the cluster (so a cluster's state still changes only in transactions that run a
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
from app.models.deployment import Deployment, DeploymentStatus
from app.services import placement
from app.services.deployment_lifecycle import complete_at_deadline
from app.services.locks import lock_clusters

Sessions = async_sessionmaker[AsyncSession]
RUNNING = DeploymentStatus.running
SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Swept:
    completed: int
    clusters_rescheduled: int


async def sweep(sessions: Sessions, batch: int = SWEEP_BATCH, now: datetime | None = None) -> Swept:
    """One round: the deadlines and the ended protections due at `now` (the present unless
    given), `batch` of each at most."""
    now = now or utcnow()
    return Swept(await _deadlines(sessions, now, batch), await _protections(sessions, now, batch))


async def _deadlines(sessions: Sessions, now: datetime, batch: int) -> int:
    async with sessions() as db:
        due = list(
            await db.scalars(
                select(Deployment.id)
                .where(Deployment.status == RUNNING, Deployment.stops_at <= now)
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
