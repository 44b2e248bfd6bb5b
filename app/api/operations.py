"""Probes and metrics, outside /api/v1 and its rate limits: probes must not be throttled."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from app.core.metrics import SharedState, exposition
from app.db.migrations import current_revision, head_revision
from app.models.deployment import DeploymentStatus
from app.services.deployment_views import count_deployments_by_status
from app.services.pending_reasons import pending_by_reason
from app.services.prediction_sql import queue_depth
from app.services.serving_state import count_not_serving
from app.services.worker_heartbeats import count_alive

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str
    reason: str | None = None
    workers_alive: int | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok"},
                {"status": "ready", "workers_alive": 2},
                {"status": "not_ready", "reason": "schema at 0001, latest migration is 0002"},
            ]
        }
    )


class HeadResponse(Response):
    """The answer to HEAD: the GET answer's status and headers (its `Content-Length` included),
    without its body. Probes and load balancers check liveness with HEAD."""

    def __init__(self, get: Response) -> None:
        super().__init__(status_code=get.status_code)
        self.raw_headers = list(get.raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b""})


@router.get("/health", summary="Liveness: the process is up", response_model_exclude_none=True)
async def health() -> Status:
    return Status(status="ok")


@router.head("/health", include_in_schema=False)
async def health_head() -> Response:
    return HeadResponse(JSONResponse((await health()).model_dump(exclude_none=True)))


@router.get(
    "/ready",
    summary="Readiness: database up, schema at the latest migration, a worker alive",
    response_model=Status,
    response_model_exclude_none=True,
    responses={
        503: {
            "model": Status,
            "description": "Not ready: `reason` says why. A probe's answer, not an error body.",
        }
    },
)
async def ready(request: Request) -> JSONResponse:
    try:
        current = await current_revision(request.app.state.engine)
        head = head_revision()
        if current != head:
            reason = f"schema at {current}, latest migration is {head}"
            return JSONResponse({"status": "not_ready", "reason": reason}, 503)
        async with request.app.state.sessionmaker() as db:
            workers = await count_alive(db)
    except (SQLAlchemyError, OSError) as exc:  # the probe's own 503, whichever query failed
        reason = f"database unavailable or not migrated ({type(exc).__name__})"
        return JSONResponse({"status": "not_ready", "reason": reason}, 503)
    if workers == 0 and not request.app.state.settings.worker_in_process:
        reason = "no prediction worker is alive; start one with `mlops worker`"
        return JSONResponse({"status": "not_ready", "reason": reason, "workers_alive": 0}, 503)
    return JSONResponse({"status": "ready", "workers_alive": workers})


@router.head("/ready", include_in_schema=False)
async def ready_head(request: Request) -> Response:
    return HeadResponse(await ready(request))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"example": 'http_requests_total{method="GET",...} 42.0'}}}
    },
)
async def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    shared = await _read_shared_state(request)
    return Response(
        exposition(settings.prometheus_multiproc_dir, shared), media_type=CONTENT_TYPE_LATEST
    )


async def _read_shared_state(request: Request) -> SharedState | None:
    """Deployment counts and the queue depth live in the database, shared by every process: read
    them at scrape time so each process reports the same truth, not only its own changes."""
    try:
        async with request.app.state.sessionmaker() as db:
            counts = await count_deployments_by_status(db)
            not_serving = await count_not_serving(db)
            depth, oldest = await queue_depth(db)
            workers = await count_alive(db)
            waiting = await pending_by_reason(db)
    except (SQLAlchemyError, OSError):
        return None
    by_status = {status.value: counts.get(status, 0) for status in DeploymentStatus}
    return SharedState(by_status, not_serving, depth, oldest, workers, waiting)
