from fastapi import APIRouter, Response, status

from app.api.deps import (
    ClusterForDeletion,
    ClusterForReading,
    ClusterForUpdate,
    DbSession,
    OrgForClusterList,
    OrgForNewCluster,
    PageParams,
)
from app.api.exact_numbers import ExactNumbersRoute
from app.models.cluster import Cluster
from app.schemas.cluster import ClusterIn, ClusterOut, ClusterPatch
from app.schemas.common import error_responses
from app.schemas.resources import ResourcesOut
from app.services import clusters as cluster_service

router = APIRouter(tags=["clusters"], route_class=ExactNumbersRoute)


def cluster_out(cluster: Cluster) -> ClusterOut:
    return ClusterOut(
        id=cluster.id,
        organization_id=cluster.organization_id,
        name=cluster.name,
        capacity=ResourcesOut.of(cluster.capacity),
        allocated=ResourcesOut.of(cluster.allocated),
        available=ResourcesOut.of(cluster.available),
        preemption_strategy=cluster.preemption_strategy,
        pending_count=cluster.pending_count,
        running_count=cluster.running_count,
        preempting_count=cluster.preempting_count,
        preemption_grace_seconds=cluster.preemption_grace_seconds,
        created_at=cluster.created_at,
    )


@router.post(
    "/organizations/{org_id}/clusters",
    status_code=status.HTTP_201_CREATED,
    summary="Create a cluster (admin)",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "organization_not_found",
        "cluster_name_taken",
        "unknown_strategy",
        "validation_error",
        "rate_limited",
    ),
)
async def create_cluster(body: ClusterIn, access: OrgForNewCluster, db: DbSession) -> ClusterOut:
    created = await cluster_service.create(
        db,
        access,
        body.name,
        body.required_capacity.to_domain(),
        body.preemption_strategy,
        body.preemption_grace_seconds,
    )
    return cluster_out(created.row)


@router.get(
    "/organizations/{org_id}/clusters",
    summary="List an organization's clusters",
    responses=error_responses(
        "not_authenticated", "organization_not_found", "validation_error", "rate_limited"
    ),
)
async def list_clusters(
    access: OrgForClusterList, db: DbSession, page: PageParams, response: Response
) -> list[ClusterOut]:
    clusters, total = await cluster_service.list_for_org(db, access, page)
    response.headers["X-Total-Count"] = str(total)
    return [cluster_out(c) for c in clusters]


@router.get(
    "/clusters/{cluster_id}",
    summary="Get a cluster",
    responses=error_responses("not_authenticated", "cluster_not_found", "rate_limited"),
)
async def get_cluster(access: ClusterForReading) -> ClusterOut:
    return cluster_out(access.row)


@router.patch(
    "/clusters/{cluster_id}",
    summary="Change a cluster's name, capacity or strategy (admin); re-runs scheduling",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "cluster_not_found",
        "capacity_below_allocated",
        "cluster_name_taken",
        "unknown_strategy",
        "validation_error",
        "rate_limited",
    ),
)
async def update_cluster(body: ClusterPatch, access: ClusterForUpdate, db: DbSession) -> ClusterOut:
    updated = await cluster_service.update(
        db,
        access,
        body.name,
        body.given_capacity.to_domain() if body.given_capacity else None,
        body.preemption_strategy,
        body.preemption_grace_seconds,
    )
    return cluster_out(updated.row)


@router.delete(
    "/clusters/{cluster_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an idle cluster and its finished deployments (admin)",
    responses=error_responses(
        "not_authenticated", "forbidden", "cluster_not_found", "cluster_in_use", "rate_limited"
    ),
)
async def delete_cluster(access: ClusterForDeletion, db: DbSession) -> None:
    await cluster_service.delete(db, access)
