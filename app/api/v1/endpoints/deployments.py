import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    ClusterForDeploymentList,
    ClusterForEvents,
    ClusterForNewDeployment,
    CurrentUser,
    DbSession,
    DeploymentForEnding,
    DeploymentForEvents,
    DeploymentForReading,
    OrgForDeploymentList,
    PageParams,
    SettingsDep,
)
from app.api.exact_numbers import ExactNumbersRoute
from app.models.deployment import DeploymentStatus
from app.scheduling.explain import PendingExplanation
from app.schemas.cluster_event import ClusterEventOut
from app.schemas.common import Timestamp, error_responses
from app.schemas.deployment import (
    DeploymentIn,
    DeploymentOut,
    DryRunOut,
    EventOut,
    PendingOut,
    ServingOut,
    VictimOut,
)
from app.schemas.resources import ResourcesOut
from app.services import cluster_events, deployment_lifecycle, deployment_views
from app.services import deployments as deployment_service
from app.services.deployment_views import DeploymentView
from app.services.deployments import NewDeployment, Rehearsal
from app.services.webhooks.urls import checked_callback

router = APIRouter(tags=["deployments"], route_class=ExactNumbersRoute)
NIL = uuid.UUID(int=0)
DRY_RUN_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"model": DryRunOut, "description": "`dry_run=true`: what it would do."}
}
DRY_RUN = (
    "true: answer what creating it would do now (200, `DryRunOut`) and write nothing: the real "
    "validation and the real scheduler on the real data, under the same locks, in a "
    "transaction that is rolled back (no deployment, no event, no metric)."
)
StatusFilter = Annotated[DeploymentStatus | None, Query(description="Only this status.")]


def deployment_out(view: DeploymentView) -> DeploymentOut:
    d = view.deployment
    running = d.status == DeploymentStatus.running
    leaving = d.status == DeploymentStatus.preempting
    return DeploymentOut(
        id=d.id,
        organization_id=d.organization_id,
        cluster_id=d.cluster_id,
        name=d.name,
        model=d.model,
        resources=ResourcesOut.of(d.resources),
        priority=d.priority,
        preemption_policy=d.preemption_policy,
        depends_on=view.depends_on,
        status=d.status,
        status_reason=view.status_reason,
        queue_position=view.queue_position,
        preemption_count=d.preemption_count,
        created_by=d.created_by,
        created_at=d.created_at,
        started_at=d.started_at,
        finished_at=d.finished_at,
        serving=ServingOut(ready=d.serving_ready, reason=d.serving_reason, since=d.serving_since)
        if running
        else None,
        min_runtime_seconds=d.min_runtime_seconds,
        max_runtime_seconds=d.max_runtime_seconds,
        protected_until=d.protected_until if running else None,
        stops_at=d.stops_at if running else None,
        evict_at=d.evict_at if leaving else None,
        preempted_by=d.preempted_by if leaving else None,
        pending=pending_out(view.insight.pending) if view.insight else None,
        estimated_start_at=view.insight.estimated_start_at if view.insight else None,
        callback_url=d.callback_url,
    )


def pending_out(why: PendingExplanation) -> PendingOut:
    return PendingOut(
        reason=why.reason,
        message=why.message,
        missing=ResourcesOut.of(why.missing),
        ahead=why.ahead,
        ahead_ids=list(why.ahead_ids),
        unmet_dependencies=list(why.unmet_dependencies),
        fits_if_lower_priority_evicted=why.fits_if_lower_evicted,
        preemption_can_help=why.preemption_can_help,
        protection_ends_at=why.protection_ends_at,
        victims_leave_at=why.victims_leave_at,
    )


@router.post(
    "/clusters/{cluster_id}/deployments",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentOut,
    summary="Submit a deployment; it is scheduled before the response",
    responses=DRY_RUN_RESPONSE
    | error_responses(
        "not_authenticated",
        "forbidden",
        "cluster_not_found",
        "exceeds_cluster_capacity",
        "unknown_dependency",
        "unknown_model",
        "validation_error",
        "callback_url_refused",
        "rate_limited",
    ),
)
async def create_deployment(
    body: DeploymentIn,
    access: ClusterForNewDeployment,
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    dry_run: Annotated[bool, Query(description=DRY_RUN)] = False,
) -> Any:
    new = NewDeployment(
        name=body.name,
        model=body.model,
        resources=body.resources.to_domain(),
        priority=body.priority,
        preemption_policy=body.preemption_policy,
        depends_on=body.depends_on,
        min_runtime_seconds=body.min_runtime_seconds,
        max_runtime_seconds=body.max_runtime_seconds,
        callback_url=checked_callback(settings, body.callback_url),
    )
    if dry_run:
        # Its own shape and status: answered as is, beside the 201 body this route declares.
        rehearsal = dry_run_out(await deployment_service.rehearse(db, access, user.id, new))
        return JSONResponse(rehearsal.model_dump(mode="json"))
    return deployment_out(await deployment_service.create(db, access, user.id, new))


def dry_run_out(rehearsal: Rehearsal) -> DryRunOut:
    insight = rehearsal.insight
    return DryRunOut(
        would_start=rehearsal.status == DeploymentStatus.running,
        status=rehearsal.status,
        status_reason=rehearsal.status_reason,
        queue_position=rehearsal.queue_position,
        evicts=[
            VictimOut(
                id=v.id,
                name=v.name,
                priority=v.priority,
                preempted_by=NIL if v.preempted_by == rehearsal.deployment_id else v.preempted_by,
            )
            for v in rehearsal.evicts
        ],
        pending=pending_out(insight.pending) if insight else None,
        estimated_start_at=insight.estimated_start_at if insight else None,
    )


@router.get(
    "/clusters/{cluster_id}/deployments",
    summary="List a cluster's deployments",
    responses=error_responses(
        "not_authenticated", "cluster_not_found", "validation_error", "rate_limited"
    ),
)
async def list_cluster_deployments(
    access: ClusterForDeploymentList,
    db: DbSession,
    page: PageParams,
    response: Response,
    status: StatusFilter = None,
) -> list[DeploymentOut]:
    views, total = await deployment_views.list_for_cluster(db, access, status, page)
    response.headers["X-Total-Count"] = str(total)
    return [deployment_out(v) for v in views]


@router.get(
    "/organizations/{org_id}/deployments",
    summary="List an organization's deployments",
    responses=error_responses(
        "not_authenticated", "organization_not_found", "validation_error", "rate_limited"
    ),
)
async def list_org_deployments(
    access: OrgForDeploymentList,
    db: DbSession,
    page: PageParams,
    response: Response,
    status: StatusFilter = None,
    cluster_id: Annotated[uuid.UUID | None, Query(description="Only this cluster.")] = None,
) -> list[DeploymentOut]:
    views, total = await deployment_views.list_for_org(db, access.row.id, status, cluster_id, page)
    response.headers["X-Total-Count"] = str(total)
    return [deployment_out(v) for v in views]


@router.get(
    "/deployments/{deployment_id}",
    summary="Get a deployment",
    responses=error_responses("not_authenticated", "deployment_not_found", "rate_limited"),
)
async def get_deployment(access: DeploymentForReading, db: DbSession) -> DeploymentOut:
    return deployment_out((await deployment_views.views(db, [access.row]))[0])


@router.get(
    "/deployments/{deployment_id}/events",
    summary="A deployment's history, oldest first",
    responses=error_responses(
        "not_authenticated", "deployment_not_found", "validation_error", "rate_limited"
    ),
)
async def list_events(
    access: DeploymentForEvents, db: DbSession, page: PageParams, response: Response
) -> list[EventOut]:
    events, total = await deployment_views.events(db, access, page)
    response.headers["X-Total-Count"] = str(total)
    return [EventOut(at=e.at, type=e.type, detail=e.detail) for e in events]


@router.get(
    "/clusters/{cluster_id}/events",
    summary="A cluster's history: its deployments' events, newest first",
    description="The events of every deployment of the cluster, as "
    "`GET /api/v1/deployments/{deployment_id}/events` lists them, each with its deployment's "
    "id and name; newest first (events recorded by one step share their `at`: the later "
    "recorded first). `since` keeps those at or after a time, for a poller that wants only what "
    "is new.",
    responses=error_responses(
        "not_authenticated", "cluster_not_found", "validation_error", "rate_limited"
    ),
)
async def list_cluster_events(
    access: ClusterForEvents,
    db: DbSession,
    page: PageParams,
    response: Response,
    since: Annotated[Timestamp | None, Query(description="From this time on (inclusive).")] = None,
) -> list[ClusterEventOut]:
    events, total = await cluster_events.list_for_cluster(db, access, since, page)
    response.headers["X-Total-Count"] = str(total)
    return [
        ClusterEventOut(
            at=e.event.at,
            type=e.event.type,
            detail=e.event.detail,
            deployment_id=e.event.deployment_id,
            deployment_name=e.deployment_name,
        )
        for e in events
    ]


@router.post(
    "/deployments/{deployment_id}/complete",
    summary="Mark a running deployment completed; frees its resources",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "deployment_not_found",
        "invalid_transition",
        "rate_limited",
    ),
)
async def complete_deployment(access: DeploymentForEnding, db: DbSession) -> DeploymentOut:
    return deployment_out(await deployment_lifecycle.complete(db, access))


@router.post(
    "/deployments/{deployment_id}/cancel",
    summary="Cancel a pending or running deployment; its dependents fail",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "deployment_not_found",
        "invalid_transition",
        "rate_limited",
    ),
)
async def cancel_deployment(access: DeploymentForEnding, db: DbSession) -> DeploymentOut:
    return deployment_out(await deployment_lifecycle.cancel(db, access))
