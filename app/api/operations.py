"""Probes and metrics, outside /api/v1 and its rate limits: probes must not be throttled."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app.db.migrations import current_revision, head_revision

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str
    reason: str | None = None


@router.get("/health", summary="Liveness: the process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: the database answers and the schema is at the latest migration",
    responses={503: {"model": Status}},
)
async def ready(request: Request) -> JSONResponse:
    try:
        current = await current_revision(request.app.state.engine)
    except (SQLAlchemyError, OSError) as exc:
        reason = f"database unavailable or not migrated ({type(exc).__name__})"
        return JSONResponse({"status": "not_ready", "reason": reason}, 503)
    head = head_revision()
    if current != head:
        reason = f"schema at {current}, latest migration is {head}"
        return JSONResponse({"status": "not_ready", "reason": reason}, 503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
