"""What time does to running deployments, applied by the workers: runs that reached their
`max_runtime_seconds` are completed, protections that ended are lifted, and victims whose grace is
over leave (back to the queue, their resources freed), each in a transaction that reschedules the
cluster (so a cluster's state still changes only in transactions that run a
pass, and it is at its fixpoint between them).

Any number of processes may sweep at once: every change is made under the locks an ending or a
pass takes, after checking again that it is still due, so each run is completed once and each
protection lifted once.
"""

import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.metrics import RUNTIME_ENDED
from app.db.base import utcnow
from app.models.deployment import HOLDING, Deployment, DeploymentStatus
from app.scheduling import Eviction, Resources
from app.services import placement
from app.services.deployment_lifecycle import complete_at_deadline
from app.services.locks import lock_clusters
from app.services.placement.passes import Known

logger = logging.getLogger(__name__)
T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]
RUNNING, PREEMPTING = DeploymentStatus.running, DeploymentStatus.preempting
SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Swept:
    completed: int
    clusters_rescheduled: int  # for ended protections
    evicted: int = 0  # victims whose grace was over


async def sweep(sessions: Sessions, batch: int = SWEEP_BATCH, now: datetime | None = None) -> Swept:
    """One round: the deadlines, graces and protections due at `now` (the present unless given),
    `batch` of each at most. Each item is its own transaction, stamped with the time its locks
    were granted; one that fails is logged and retried next round, and holds up no other."""
    now = now or utcnow()
    completed = await _deadlines(sessions, now, batch)
    evicted = await _graces(sessions, now, batch)
    return Swept(completed, await _protections(sessions, now, batch), evicted)


async def _guarded(what: str, item: uuid.UUID, step: Awaitable[T], default: T) -> T:
    try:
        return await step
    except Exception:  # one item must not stall the rest of the round
        logger.exception("sweeper: %s %s failed; retried next round", what, item)
        return default


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
        done = await _guarded(
            "completing", deployment_id, _complete(sessions, deployment_id, now), False
        )
        completed += done
    RUNTIME_ENDED.inc(completed)
    return completed


async def _complete(sessions: Sessions, deployment_id: uuid.UUID, now: datetime) -> bool:
    async with sessions() as db:
        deployment = await db.get(Deployment, deployment_id)
        return deployment is not None and await complete_at_deadline(db, deployment, now)


async def _clusters_where(
    sessions: Sessions, batch: int, *due: ColumnElement[bool]
) -> list[uuid.UUID]:
    async with sessions() as db:
        found = await db.scalars(select(Deployment.cluster_id).where(*due).distinct().limit(batch))
        return sorted(found)


async def _protections(sessions: Sessions, now: datetime, batch: int) -> int:
    clusters = await _clusters_where(
        sessions, batch, Deployment.status == RUNNING, Deployment.protected_until <= now
    )
    for cluster_id in clusters:
        await _guarded(
            "lifting protections on cluster", cluster_id, _lift(sessions, cluster_id, now), None
        )
    return len(clusters)


async def _lift(sessions: Sessions, cluster_id: uuid.UUID, due: datetime) -> None:
    async with sessions() as db:
        await _lift_in(db, cluster_id, due)


async def _lift_in(db: AsyncSession, cluster_id: uuid.UUID, due: datetime) -> None:
    cluster = (await lock_clusters(db, [cluster_id])).get(cluster_id)
    if cluster is None:
        return
    now = max(due, utcnow())
    lifted = await db.execute(
        update(Deployment)
        .where(
            Deployment.cluster_id == cluster_id,
            Deployment.status == RUNNING,
            Deployment.protected_until <= due,
        )
        .values(protected_until=None)
        .execution_options(synchronize_session=False)
    )
    if lifted.rowcount:  # type: ignore[attr-defined]
        await db.run_sync(placement.reschedule_sync, cluster, now, [], False)
    await db.commit()


async def _graces(sessions: Sessions, now: datetime, batch: int) -> int:
    clusters = await _clusters_where(
        sessions, batch, Deployment.status == PREEMPTING, Deployment.evict_at <= now
    )
    evicted = 0
    for cluster_id in clusters:
        evicted += await _guarded(
            "evicting on cluster", cluster_id, _leave(sessions, cluster_id, now), 0
        )
    return evicted


async def _leave(sessions: Sessions, cluster_id: uuid.UUID, due: datetime) -> int:
    async with sessions() as db:
        return await _leave_in(db, cluster_id, due)


async def _leave_in(db: AsyncSession, cluster_id: uuid.UUID, due: datetime) -> int:
    """The victims of this cluster whose grace is over leave, then the cluster is scheduled
    again: their preemptors start now, unless one ranked ahead of them takes the room."""
    cluster = (await lock_clusters(db, [cluster_id])).get(cluster_id)
    if cluster is None:
        return 0
    now = max(due, utcnow())
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
                Deployment.evict_at <= due,
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
