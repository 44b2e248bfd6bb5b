"""A cluster's events: its deployments' histories in one feed, newest first."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.cluster import Cluster
from app.models.deployment import Deployment, DeploymentEvent
from app.services.pagination import Page, paginate
from app.services.tenancy import Scoped


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    event: DeploymentEvent
    deployment_name: str


async def list_for_cluster(
    db: AsyncSession, access: Scoped[Cluster], since: datetime | None, page: Page
) -> tuple[list[ClusterEvent], int]:
    """The events of the cluster's deployments, newest first (ties: the later recorded first),
    those at or after `since` when given.

    Events carry no cluster id: the cluster's deployments come from `ix_deployments_cluster_listing`
    and each one's events from `ix_deployment_events_listing` (`deployment_id`, `at`, `id`), one
    range per deployment in which `since` is an index condition. So a poll reads the heap only for
    what is new, and the work grows with this cluster's deployments, never with other clusters'.
    The page is then a top-N sort of the matching rows, which the count reads all anyway."""
    stmt = (
        select(DeploymentEvent, Deployment.name)
        .join(Deployment, Deployment.id == DeploymentEvent.deployment_id)
        .where(Deployment.cluster_id == access.row.id)
        .order_by(DeploymentEvent.at.desc(), DeploymentEvent.id.desc())
    )
    if since is not None:
        stmt = stmt.where(DeploymentEvent.at >= since)
    rows, total = await paginate(db, stmt, page)
    return [ClusterEvent(event, name) for event, name in rows], total
