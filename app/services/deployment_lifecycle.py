"""Ending a deployment: complete (running → completed) and cancel (pending or running →
cancelled). It frees its resources at once, fails its unfinished predictions, then releases its
dependents (completed) or fails them (cancelled), and schedules every touched cluster again
(rules 5 and 6 of the scheduling semantics), all in one transaction and in the lock order.
"""

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import HOLDING, Deployment, DeploymentDependency, DeploymentStatus
from app.scheduling import PendingDeployment
from app.services import audit, placement
from app.services.deployment_events import record
from app.services.deployment_failures import fail
from app.services.deployment_views import DeploymentView, views
from app.services.locks import lock_clusters, lock_organization
from app.services.placement.statements import QUEUE_COLUMNS, pending_of_row
from app.services.prediction_states import end_for_deployments
from app.services.tenancy import Scoped

PENDING, RUNNING = DeploymentStatus.pending, DeploymentStatus.running
COMPLETED, CANCELLED = DeploymentStatus.completed, DeploymentStatus.cancelled
# The statuses each ending may leave; any other is 409 invalid_transition.
PREEMPTING = DeploymentStatus.preempting
ENDS_FROM = {COMPLETED: (RUNNING, PREEMPTING), CANCELLED: (PENDING, RUNNING, PREEMPTING)}
MAX_RUNTIME_REACHED = "max_runtime_reached"


async def complete(db: AsyncSession, access: Scoped[Deployment]) -> DeploymentView:
    ended = await _end(db, access.row, COMPLETED)
    assert ended is not None
    return await _view(db, ended)


async def cancel(db: AsyncSession, access: Scoped[Deployment]) -> DeploymentView:
    ended = await _end(db, access.row, CANCELLED, by=access.user_id)
    assert ended is not None
    return await _view(db, ended)


async def complete_at_deadline(db: AsyncSession, deployment: Deployment, now: datetime) -> bool:
    """The sweeper's completion of a run that reached its `max_runtime_seconds`: under the same
    locks as any ending, and only if that run is still the one running and its deadline has
    passed (another process may have completed it, or it was evicted and started again since).
    Whether it was completed here."""
    ended = await _end(db, deployment, COMPLETED, deadline=now)
    return ended is not None


async def _view(db: AsyncSession, deployment: Deployment) -> DeploymentView:
    return (await views(db, [deployment]))[0]


async def _end(
    db: AsyncSession,
    row: Deployment,
    outcome: DeploymentStatus,
    *,
    by: uuid.UUID | None = None,
    deadline: datetime | None = None,
) -> Deployment | None:
    """End `row` as `outcome` (by a user when `by` is set); with `deadline`, only a run whose
    `stops_at` is at or before it, and None (nothing done) otherwise."""
    org_id, deployment_id = row.organization_id, row.id
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
        db, {row.cluster_id} | {cluster_id for _, cluster_id in dependents}
    )
    deployment = await db.get(Deployment, deployment_id, populate_existing=True)
    if deadline is not None and not _past_deadline(deployment, deadline):
        await db.rollback()
        return None
    if deployment is None or deployment.status not in ENDS_FROM[outcome]:
        current = deployment.status if deployment else "missing"
        raise Conflict("invalid_transition", f"A {current} deployment cannot become {outcome}.")
    # Stamped once the locks are held; a sweep judged "due" by `deadline`, which tests may set
    # in the future.
    now = utcnow() if deadline is None else max(deadline, utcnow())
    was_running, previous = deployment.status in HOLDING, deployment.status
    own = clusters[deployment.cluster_id]
    if was_running:
        own.allocated = own.allocated - deployment.resources
    if deployment.status == PREEMPTING:
        own.preempting_count -= 1
    elif was_running:
        own.running_count -= 1
    else:
        own.pending_count -= 1
    reason = None if deadline is None else MAX_RUNTIME_REACHED
    deployment.status, deployment.status_reason, deployment.finished_at = outcome, reason, now
    # The run is over: nothing of it is left for the sweeper.
    deployment.evict_at = deployment.preempted_by = None
    deployment.protected_until = deployment.stops_at = None
    await db.flush()
    await db.run_sync(end_for_deployments, [deployment.id], now)
    if reason is not None:
        limit = deployment.max_runtime_seconds
        record(db.sync_session, deployment.id, "completed", now, reason=reason, after=limit)
    elif outcome == COMPLETED:
        record(db.sync_session, deployment.id, "completed", now)
    else:
        record(db.sync_session, deployment.id, "cancelled", now, by=str(by))
    dependent_ids = [dependent_id for dependent_id, _ in dependents]
    if outcome == CANCELLED:
        await db.run_sync(fail, dependent_ids, "dependency_failed", now)
        # Room appears when it held some, or when it was a preemptor waiting for victims to
        # leave (what was reserved for it is free again).
        if was_running or own.preempting_count:
            await db.run_sync(placement.reschedule_sync, own, now, [], False)
    else:
        await _release_dependents(db, dependent_ids, clusters, own, now)
    if deadline is None:  # a person's or a key's act; the sweeper's are in the events
        audit.record(
            db,
            org_id,
            f"deployment.{outcome}",
            ("deployment", deployment_id),
            before={"status": previous},
            after={"status": outcome},
        )
    await db.commit()
    return deployment


def _past_deadline(deployment: Deployment | None, deadline: datetime) -> bool:
    return (
        deployment is not None
        and deployment.status in HOLDING
        and deployment.stops_at is not None
        and deployment.stops_at <= deadline
    )


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
                .returning(*QUEUE_COLUMNS, Deployment.cluster_id, Deployment.unmet_dependencies)
            )
        ).all()
        for row in rows:
            if row.unmet_dependencies == 0:
                released.setdefault(row.cluster_id, []).append(pending_of_row(row))
    for cluster_id in sorted({own.id, *released}):
        await db.run_sync(
            placement.reschedule_sync,
            clusters[cluster_id],
            now,
            released.get(cluster_id, []),
            cluster_id != own.id,
        )
