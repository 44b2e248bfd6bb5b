"""Why pending deployments wait and when they would start, for the views that show them.

The answers come from the pure scheduler (`app.scheduling.explain`, `app.scheduling.forecast`)
fed with the cluster's state as this transaction sees it. Per cluster on the page: its row, its
running set, the head of its queue (the ids shown as ahead), and, only when some running
deployment has a deadline or a protection (otherwise nothing ever changes on its own and every
estimate is null), the queue itself for the simulation.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Subquery, and_, bindparam, func, or_, select, true
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
    REASONS,
    WAITING_FOR_DEPENDENCIES,
    PendingExplanation,
    Surroundings,
    explain,
    protected_in_the_way,
    surroundings,
)
from app.scheduling.forecast import estimate_starts
from app.scheduling.reservations import reservations
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
_RESOURCES = ("cpu_millis", "ram_millis", "gpu")
# Ids shown as ahead of a deployment: the head of its queue, the ones that go first.
AHEAD_IDS = 10
# A queue longer than this is not simulated (its estimates are null): the answer must stay cheap
# (the simulation is Python on the event loop, up to `forecast.DEFAULT_MAX_STEPS` passes).
FORECAST_QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Insight:
    pending: PendingExplanation
    estimated_start_at: datetime | None


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
            light = await _light(db, here[0], positions, unmet)
            if light is not None:
                found[here[0].id] = light
                continue
        state = await cluster_state(db, cluster_id)
        if state is not None:
            found |= await _for_cluster(db, state, here, positions, unmet)
    return found


def around_and_head() -> tuple[Subquery, Subquery]:
    """For one pending deployment of priority p (parameters `cluster_id` and `priority`), one row:
    its cluster's row, and over its running rows what the evictable ones below p hold, how many
    protected ones are below p, and how many have a deadline or a protection (then time alone
    changes the cluster); and the ids at the head of its queue. All read in one snapshot."""
    cluster_id = bindparam("cluster_id", type_=Deployment.cluster_id.type)
    below = Deployment.priority < bindparam("priority", type_=Deployment.priority.type)
    protected = Deployment.protected_until.is_not(None)
    evictable = and_(below, Deployment.protected_until.is_(None))
    around = (
        select(
            *(
                func.coalesce(func.sum(column).filter(evictable), 0).label(f"free_{column.key}")
                for column in (Deployment.cpu_millis, Deployment.ram_millis, Deployment.gpu)
            ),
            func.count().filter(and_(below, protected)).label("protected"),
            func.count().filter(or_(protected, Deployment.stops_at.is_not(None))).label("timed"),
        )
        .where(Deployment.cluster_id == cluster_id, Deployment.status == DeploymentStatus.running)
        .subquery("running_below")
    )
    table = Cluster.__table__.c
    facts = (
        select(
            *(table[f"{kind}_{r}"] for kind in ("capacity", "allocated") for r in _RESOURCES),
            table.preempting_count,
            table.preemption_strategy,
        )
        .where(Cluster.id == cluster_id)
        .subquery("facts")
    )
    both = select(facts, around).select_from(facts.join(around, true()))
    return both.subquery("around"), _queue_head_statement(cluster_id).subquery("head")


def _queue_head_statement(cluster_id: Any) -> Select[uuid.UUID]:
    return (
        select(Deployment.id)
        .where(
            Deployment.cluster_id == cluster_id,
            Deployment.status == PENDING,
            Deployment.unmet_dependencies == 0,
        )
        .order_by(*QUEUE_ORDER_BY)
        .limit(AHEAD_IDS)
    )


def _around_statement() -> Select[*tuple[Any, ...]]:
    around, head = around_and_head()
    return select(around, head.c.id).select_from(around.outerjoin(head, true()))


_AROUND = _around_statement()


async def _light(
    db: AsyncSession,
    deployment: Deployment,
    positions: dict[uuid.UUID, int],
    unmet: dict[uuid.UUID, list[uuid.UUID]],
) -> Insight | None:
    """One pending deployment's insight without loading its cluster's running set, in the usual
    case where nothing there is protected, timed or leaving (then no estimate exists either);
    None otherwise."""
    params = {"cluster_id": deployment.cluster_id, "priority": deployment.priority}
    rows = (await (await db.connection()).execute(_AROUND, params)).all()
    position = positions.get(deployment.id)
    return light_insight(deployment, rows, position, unmet.get(deployment.id, ()))


def light_insight(
    deployment: Deployment,
    rows: Sequence[Any],
    position: int | None,
    unmet: Sequence[uuid.UUID] = (),
) -> Insight | None:
    """The insight from the rows of a statement built on `around_and_head`, or None when the
    cluster needs the full path (something there is protected, timed or leaving, or the
    cluster is gone)."""
    if not rows:
        return None
    first = rows[0]
    if first.preempting_count or first.protected or first.timed:
        return None
    capacity = Resources(first.capacity_cpu_millis, first.capacity_ram_millis, first.capacity_gpu)
    allocated = Resources(
        first.allocated_cpu_millis, first.allocated_ram_millis, first.allocated_gpu
    )
    held = (first.free_cpu_millis, first.free_ram_millis, first.free_gpu)
    ahead = (position or 1) - 1
    head = [row.id for row in rows if row.id is not None]
    why = explain(
        pending_of_deployment(deployment),
        Surroundings(capacity - allocated, Resources(*(int(value) for value in held))),
        get_strategy(first.preemption_strategy),
        ahead=ahead,
        ahead_ids=head[:ahead],
        unmet_dependencies=unmet,
    )
    return Insight(why, None)


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
    head = await _queue_head(db, cluster.id) if queued else []
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


async def _queue_head(db: AsyncSession, cluster_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await db.scalars(_queue_head_statement(cluster_id)))


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
