"""The shortcut for one pending deployment: its insight from one statement instead of its
cluster's running set, in the usual case where nothing in the cluster is protected, timed or
leaving (then nothing changes on its own, and there is no estimate to simulate).

The statement reads, in one snapshot, the cluster's row, what the evictable deployments below
the deployment's priority hold, whether anything is protected or timed, and the head of the
queue; `deployment_views` adds the queue position to it, so a creation that waits costs the
statements it cost before the insight existed.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Subquery, and_, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.cluster import Cluster
from app.models.deployment import QUEUE_ORDER_BY, Deployment, DeploymentStatus
from app.scheduling import Resources, get_strategy
from app.scheduling.explain import PendingExplanation, Surroundings, explain
from app.services.placement.statements import pending_of_deployment

PENDING = DeploymentStatus.pending
_RESOURCES = ("cpu_millis", "ram_millis", "gpu")
# Ids shown as ahead of a deployment: the head of its queue, the ones that go first.
AHEAD_IDS = 10


@dataclass(frozen=True, slots=True)
class Insight:
    pending: PendingExplanation
    estimated_start_at: datetime | None


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


async def light(
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


async def queue_head(db: AsyncSession, cluster_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await db.scalars(_queue_head_statement(cluster_id)))
