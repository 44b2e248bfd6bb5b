"""Reading deployments: views with `depends_on`, `queue_position` and, while pending, why and
until when (`scheduling_insight`); lists, events, counts."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.cluster import Cluster
from app.models.deployment import (
    ACTIVE,
    QUEUE_ORDER_BY,
    Deployment,
    DeploymentDependency,
    DeploymentEvent,
    DeploymentStatus,
)
from app.services.insight_shortcut import Insight, around_and_head, light_insight
from app.services.pagination import Page, paginate
from app.services.scheduling_insight import insights
from app.services.tenancy import Scoped

PENDING, RUNNING = DeploymentStatus.pending, DeploymentStatus.running
DeploymentAccess = Scoped[Deployment]


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment: Deployment
    depends_on: list[uuid.UUID]
    queue_position: int | None
    insight: Insight | None = None  # while pending

    @property
    def status_reason(self) -> str | None:
        d = self.deployment
        if d.status != PENDING:
            return d.status_reason
        if d.unmet_dependencies:
            return "waiting_for_dependencies"
        return "preempted" if d.status_reason == "preempted" else "insufficient_resources"


async def views(db: AsyncSession, deployments: Sequence[Deployment]) -> list[DeploymentView]:
    """Attach `depends_on` and `queue_position` to a page of deployments in two queries."""
    if not deployments:
        return []
    ids = [d.id for d in deployments]
    edges = await db.execute(
        select(DeploymentDependency.deployment_id, DeploymentDependency.depends_on_id)
        .where(DeploymentDependency.deployment_id.in_(ids))
        .order_by(DeploymentDependency.deployment_id, DeploymentDependency.position)
    )
    depends: dict[uuid.UUID, list[uuid.UUID]] = {}
    for deployment_id, depends_on_id in edges:
        depends.setdefault(deployment_id, []).append(depends_on_id)
    positions = await _queue_positions(
        db, [d for d in deployments if d.status == PENDING and d.unmet_dependencies == 0]
    )
    found = await insights(db, deployments, positions)
    return [
        DeploymentView(d, depends.get(d.id, []), positions.get(d.id), found.get(d.id))
        for d in deployments
    ]


# Counting more rows ahead than this, a deployment is ranked from the end of the queue instead.
_RANK_CAP = 64


def _rank_of_one() -> Select[int]:
    """The queue position of one deployment in one statement, counting at most `_RANK_CAP` rows
    ahead of it (a prefix of the queue index, in its order). When there are that many, it ranks
    from the end instead: the cluster's `pending_count` (kept exact by every transaction that
    changes a status, and read in the same snapshot), minus those waiting for dependencies (their
    own small index), minus the queue behind it (range scans), minus itself if still queued.
    Either way a few index entries for a deployment near either end of a queue of thousands."""
    cluster = bindparam("cluster_id", type_=Deployment.cluster_id.type)
    priority = bindparam("priority", type_=Deployment.priority.type)
    row_id = bindparam("id", type_=Deployment.id.type)
    key = tuple_(bindparam("created_at", type_=Deployment.created_at.type), row_id)
    row_key = tuple_(Deployment.created_at, Deployment.id)
    queue = (
        Deployment.cluster_id == cluster,
        Deployment.status == PENDING,
        Deployment.unmet_dependencies == 0,
    )

    def count(*where: ColumnElement[bool]) -> ScalarSelect[int]:
        return select(func.count()).select_from(Deployment).where(*where).scalar_subquery()

    ahead = (
        select(Deployment.id)
        .where(
            *queue,
            or_(
                Deployment.priority > priority,
                and_(Deployment.priority == priority, row_key < key),
            ),
        )
        .order_by(*QUEUE_ORDER_BY)
        .limit(_RANK_CAP)
        .subquery("ahead")
    )
    counted = select(func.count().label("n")).select_from(ahead).subquery("counted")
    pending = select(Cluster.pending_count).where(Cluster.id == cluster).scalar_subquery()
    waiting = count(
        Deployment.cluster_id == cluster,
        Deployment.status == PENDING,
        Deployment.unmet_dependencies > 0,
    )
    behind = count(*queue, Deployment.priority < priority) + count(
        *queue, Deployment.priority == priority, row_key > key
    )
    itself = count(
        Deployment.id == row_id, Deployment.status == PENDING, Deployment.unmet_dependencies == 0
    )
    from_the_end = pending - waiting - behind - itself + 1
    rank = case((counted.c.n < _RANK_CAP, counted.c.n + 1), else_=from_the_end)
    return select(rank.label("position"))


_RANK_OF_ONE = _rank_of_one()


def _queued_statement() -> Select[Any]:
    """A deployment's queue position, with beside it what `insight_shortcut.light_insight`
    reads: one statement for a newcomer that waits."""
    ranked = _RANK_OF_ONE.subquery("ranked")
    around, head = around_and_head()
    joined = ranked.join(around, true()).outerjoin(head, true())
    return select(ranked.c.position, around, head.c.id).select_from(joined)


_QUEUED = _queued_statement()


def _rank_params(queued: Deployment) -> dict[str, Any]:
    return {
        "cluster_id": queued.cluster_id,
        "priority": queued.priority,
        "created_at": queued.created_at,
        "id": queued.id,
    }


async def position_and_insight(db: AsyncSession, queued: Deployment) -> tuple[int, Insight | None]:
    """The queue position of a deployment just queued (dependencies met) and, in the usual case,
    its insight, in one statement (None: the caller takes the full path)."""
    conn = await db.connection()
    rows = (await conn.execute(_QUEUED, _rank_params(queued))).all()
    if not rows:  # the cluster is gone
        return await _position_alone(db, queued), None
    position = int(rows[0].position)
    return position, light_insight(queued, rows, position)


async def _position_alone(db: AsyncSession, queued: Deployment) -> int:
    conn = await db.connection()
    return int((await conn.execute(_RANK_OF_ONE, _rank_params(queued))).scalar_one())


async def _queue_positions(db: AsyncSession, queued: Sequence[Deployment]) -> dict[uuid.UUID, int]:
    """Rank among the cluster's queue in scheduling order: one count per deployment, all in one
    query, each a range scan of the queue index."""
    if not queued:
        return {}
    ahead = Deployment.__table__.alias("ahead")
    subject = Deployment.__table__.alias("subject")
    rank = (
        select(func.count())
        .select_from(ahead)
        .where(
            ahead.c.cluster_id == subject.c.cluster_id,
            ahead.c.status == PENDING.value,
            ahead.c.unmet_dependencies == 0,
            or_(
                ahead.c.priority > subject.c.priority,
                and_(
                    ahead.c.priority == subject.c.priority,
                    or_(
                        ahead.c.created_at < subject.c.created_at,
                        and_(ahead.c.created_at == subject.c.created_at, ahead.c.id < subject.c.id),
                    ),
                ),
            ),
        )
        .scalar_subquery()
    )
    rows = await db.execute(
        select(subject.c.id, rank).where(subject.c.id.in_([d.id for d in queued]))
    )
    return {row[0]: int(row[1]) + 1 for row in rows}


def _listing(stmt: Select[Deployment], status: DeploymentStatus | None) -> Select[Deployment]:
    if status is not None:
        stmt = stmt.where(Deployment.status == status)
    return stmt.order_by(Deployment.created_at, Deployment.id)


async def list_for_cluster(
    db: AsyncSession, access: Scoped[Cluster], status: DeploymentStatus | None, page: Page
) -> tuple[list[DeploymentView], int]:
    stmt = _listing(select(Deployment).where(Deployment.cluster_id == access.row.id), status)
    rows, total = await paginate(db, stmt, page)
    return await views(db, [row[0] for row in rows]), total


async def list_for_org(
    db: AsyncSession,
    org_id: uuid.UUID,
    status: DeploymentStatus | None,
    cluster_id: uuid.UUID | None,
    page: Page,
) -> tuple[list[DeploymentView], int]:
    stmt = select(Deployment).where(Deployment.organization_id == org_id)
    if cluster_id is not None:
        stmt = stmt.where(Deployment.cluster_id == cluster_id)
    rows, total = await paginate(db, _listing(stmt, status), page)
    return await views(db, [row[0] for row in rows]), total


async def events(
    db: AsyncSession, access: DeploymentAccess, page: Page
) -> tuple[list[DeploymentEvent], int]:
    stmt = (
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == access.row.id)
        .order_by(DeploymentEvent.at, DeploymentEvent.id)
    )
    rows, total = await paginate(db, stmt, page)
    return [row[0] for row in rows], total


async def count_active(db: AsyncSession, org_id: uuid.UUID) -> int:
    return (
        await db.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(
                Deployment.organization_id == org_id,
                Deployment.status.in_(ACTIVE),
            )
        )
        or 0
    )


async def count_deployments_by_status(db: AsyncSession) -> dict[DeploymentStatus, int]:
    rows = await db.execute(select(Deployment.status, func.count()).group_by(Deployment.status))
    return {row[0]: row[1] for row in rows}
