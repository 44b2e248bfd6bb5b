"""Pending reasons counted for the metrics scrape, and the evictions protection avoided."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.deployment import Deployment, DeploymentStatus
from app.scheduling import RunningSet, get_strategy
from app.scheduling.explain import (
    REASONS,
    WAITING_FOR_DEPENDENCIES,
    explain,
    protected_in_the_way,
    surroundings,
)
from app.services.placement.statements import QUEUE_COLUMNS, pending_of_deployment, pending_of_row
from app.services.scheduling_insight import cluster_state

PENDING = DeploymentStatus.pending


async def pending_by_reason(db: AsyncSession) -> dict[str, int]:
    """Every pending deployment's reason, counted (for the metrics scrape): those waiting for
    dependencies by one count, each cluster's queue explained against its running set."""
    counts: dict[str, int] = dict.fromkeys(REASONS, 0)
    counts[WAITING_FOR_DEPENDENCIES] = (
        await db.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.status == PENDING, Deployment.unmet_dependencies > 0)
        )
        or 0
    )
    queued_clusters = await db.scalars(
        select(Deployment.cluster_id)
        .where(Deployment.status == PENDING, Deployment.unmet_dependencies == 0)
        .distinct()
    )
    conn = await db.connection()
    for cluster_id in list(queued_clusters):
        state = await cluster_state(db, cluster_id)
        if state is None:
            continue
        running = RunningSet(state.running)
        strategy = get_strategy(state.cluster.preemption_strategy)
        queue = await conn.execute(
            select(*QUEUE_COLUMNS).where(
                Deployment.cluster_id == cluster_id,
                Deployment.status == PENDING,
                Deployment.unmet_dependencies == 0,
            )
        )
        capacity = state.cluster.capacity
        for row in queue:
            pending = pending_of_row(row)
            around = surroundings(pending, capacity, running, state.reserved)
            counts[explain(pending, around, strategy).reason] += 1
    return counts


async def evictions_protection_avoids(db: AsyncSession, deployment: Deployment) -> int:
    """For a newcomer waiting for protection: how many protected deployments it would have
    evicted (the metric of evictions avoided)."""
    state = await cluster_state(db, deployment.cluster_id)
    if state is None:
        return 0
    pending = pending_of_deployment(deployment)
    running = RunningSet(state.running)
    around = surroundings(pending, state.cluster.capacity, running, state.reserved)
    return protected_in_the_way(pending, around.available, state.running)
