"""Why pending deployments wait and when they would start, for the views that show them.

The answers come from the pure scheduler (`app.scheduling.explain`, `app.scheduling.forecast`)
fed with the cluster's state as this transaction sees it. Per cluster on the page: its row, its
running set, the head of its queue (the ids shown as ahead), and, only when some running
deployment has a deadline or a protection (otherwise nothing ever changes on its own and every
estimate is null), the queue itself for the simulation. A single deployment whose cluster has
nothing protected, timed or leaving takes `insight_shortcut` instead.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.models.cluster import Cluster
from app.models.deployment import (
    QUEUE_ORDER_BY,
    Deployment,
    DeploymentDependency,
    DeploymentStatus,
)
from app.scheduling import Resources, RunningDeployment, RunningSet, get_strategy
from app.scheduling.explain import (
    explain,
    surroundings,
)
from app.scheduling.forecast import estimate_starts
from app.scheduling.reservations import reservations
from app.services import insight_shortcut
from app.services.insight_shortcut import Insight
from app.services.placement.passes import grace_of
from app.services.placement.statements import (
    LOAD_RUNNING,
    QUEUE_COLUMNS,
    load_awaiting,
    pending_of_deployment,
    pending_of_row,
    running_of,
)

PENDING, COMPLETED = DeploymentStatus.pending, DeploymentStatus.completed
# A queue longer than this is not simulated (its estimates are null): the answer must stay cheap
# (the simulation is Python on the event loop, up to `forecast.DEFAULT_MAX_STEPS` passes).
FORECAST_QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class ClusterState:
    cluster: Cluster
    running: list[RunningDeployment]
    reserved: dict[uuid.UUID, Resources]  # for preemptors waiting for their victims

    @property
    def changes_on_its_own(self) -> bool:
        return any(
            run.stops_at is not None or run.protected_until is not None or run.evict_at is not None
            for run in self.running
        )


async def cluster_state(db: AsyncSession, cluster_id: uuid.UUID) -> ClusterState | None:
    # Fresh, not the session's copy: it must agree with the running set read next.
    cluster = await db.get(Cluster, cluster_id, populate_existing=True)
    if cluster is None:
        return None
    conn = await db.connection()
    running = [
        running_of(row) for row in await conn.execute(LOAD_RUNNING, {"cluster_id": cluster_id})
    ]
    awaiting = await db.run_sync(load_awaiting, running, frozenset())
    return ClusterState(cluster, running, reservations(running, awaiting))


async def insights(
    db: AsyncSession, deployments: Sequence[Deployment], positions: dict[uuid.UUID, int]
) -> dict[uuid.UUID, Insight]:
    """An insight for each pending deployment among `deployments`; `positions` are the queue
    positions of those whose dependencies are met."""
    waiting = [d for d in deployments if d.status == PENDING]
    if not waiting:
        return {}
    unmet = await _unmet_dependencies(db, [d.id for d in waiting if d.unmet_dependencies])
    found: dict[uuid.UUID, Insight] = {}
    for cluster_id in sorted({d.cluster_id for d in waiting}):
        here = [d for d in waiting if d.cluster_id == cluster_id]
        if len(here) == 1:
            light = await insight_shortcut.light(db, here[0], positions, unmet)
            if light is not None:
                found[here[0].id] = light
                continue
        state = await cluster_state(db, cluster_id)
        if state is not None:
            found |= await _for_cluster(db, state, here, positions, unmet)
    return found


async def _for_cluster(
    db: AsyncSession,
    state: ClusterState,
    deployments: list[Deployment],
    positions: dict[uuid.UUID, int],
    unmet: dict[uuid.UUID, list[uuid.UUID]],
) -> dict[uuid.UUID, Insight]:
    cluster = state.cluster
    strategy = get_strategy(cluster.preemption_strategy)
    queued = [d for d in deployments if d.id in positions]
    head = await insight_shortcut.queue_head(db, cluster.id) if queued else []
    estimates = await _estimates(db, state, queued) if queued else {}
    running = RunningSet(state.running)
    found = {}
    for deployment in deployments:
        ahead = positions.get(deployment.id, 1) - 1
        pending = pending_of_deployment(deployment)
        why = explain(
            pending,
            surroundings(pending, cluster.capacity, running, state.reserved),
            strategy,
            ahead=ahead,
            ahead_ids=head[:ahead],
            unmet_dependencies=unmet.get(deployment.id, ()),
        )
        found[deployment.id] = Insight(why, estimates.get(deployment.id))
    return found


async def _estimates(
    db: AsyncSession, state: ClusterState, queued: list[Deployment]
) -> dict[uuid.UUID, datetime]:
    cluster = state.cluster
    if not state.changes_on_its_own or cluster.pending_count > FORECAST_QUEUE_LIMIT:
        return {}
    conn = await db.connection()
    rows = await conn.execute(
        select(*QUEUE_COLUMNS)
        .where(
            Deployment.cluster_id == cluster.id,
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
        )
        .order_by(*QUEUE_ORDER_BY)
    )
    try:
        return estimate_starts(
            cluster.capacity,
            state.running,
            [pending_of_row(row) for row in rows],
            get_strategy(cluster.preemption_strategy),
            utcnow(),
            wanted={d.id for d in queued},
            grace=grace_of(cluster),
        )
    except ValueError:  # the running set and the queue were read a moment apart and disagree
        return {}


async def _unmet_dependencies(
    db: AsyncSession, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await db.execute(
        select(DeploymentDependency.deployment_id, DeploymentDependency.depends_on_id)
        .join(Deployment, Deployment.id == DeploymentDependency.depends_on_id)
        .where(DeploymentDependency.deployment_id.in_(wanted), Deployment.status != COMPLETED)
        .order_by(DeploymentDependency.deployment_id, DeploymentDependency.position)
    )
    unmet: dict[uuid.UUID, list[uuid.UUID]] = {}
    for deployment_id, depends_on_id in rows:
        unmet.setdefault(deployment_id, []).append(depends_on_id)
    return unmet
