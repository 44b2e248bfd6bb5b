from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api import prediction_flow
from app.api.deps import (
    DbSession,
    DeploymentForPrediction,
    DeploymentForPredictionList,
    PageParams,
    PredictionForCancel,
    PredictionForReading,
)
from app.api.prediction_flow import (
    accepted_response,
    not_completed,
)
from app.core.rate_limit import rate_limit_scope
from app.models.prediction import Prediction, PredictionStatus
from app.schemas.common import error_responses
from app.schemas.prediction import AcceptedOut, PredictIn, PredictionOut, prediction_out
from app.services import predictions as prediction_service

router = APIRouter(tags=["predictions"])


def accepted(prediction: Prediction, workers: int = 1) -> JSONResponse:
    warning = None if workers else "No worker that runs this model is alive; it waits for one."
    body = AcceptedOut(prediction_id=prediction.id, warning=warning).model_dump(
        mode="json", exclude_none=True
    )
    return accepted_response(body, f"/api/v1/predictions/{prediction.id}")


@router.post(
    "/deployments/{deployment_id}/predict",
    summary="Run a prediction (synchronous by default; Async-Mode: true answers 202 at once)",
    response_model=PredictionOut,
    description="Synchronous by default: the answer is the finished prediction (200), or 502 "
    "`prediction_failed` if the model failed (or ran past `timeout_seconds`), 409 "
    "`prediction_cancelled` if it was cancelled meanwhile, 504 `prediction_expired` if no worker "
    "started it within `ttl_seconds`. With `Async-Mode: true` or `Prefer: respond-async` "
    "the answer is 202 at once, and `GET /api/v1/predictions/{prediction_id}` (the `Location`) "
    "gives the result when it is done. A synchronous prediction still unfinished after "
    "`SYNC_PREDICT_TIMEOUT` seconds (300) is answered 202 as well. 503 `model_unavailable`: the "
    "workers found the model cannot serve; 503 `no_worker`: synchronous, and no live worker runs "
    "the model (asynchronous, it waits for one). Send `Idempotency-Key` to make retries safe.",
    responses={
        202: {
            "model": AcceptedOut,
            "description": "Accepted; poll the `Location`.",
            "headers": {
                "Location": {
                    "description": "`/api/v1/predictions/{prediction_id}`, to poll.",
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(
            "not_authenticated",
            "forbidden",
            "deployment_not_found",
            "deployment_not_running",
            *prediction_flow.RUN_ERRORS,
        ),
    },
)
@rate_limit_scope("predict")
async def predict(
    body: PredictIn,
    access: DeploymentForPrediction,
    db: DbSession,
    request: Request,
    asked: prediction_flow.AskedHeaders,
) -> Response:
    outcome = await prediction_flow.run(
        request, db, access, body, asked.asynchronous, asked.idempotency_key
    )
    if not outcome.done:
        return accepted(outcome.prediction, outcome.workers)
    # A replay reports the state: it is not a new failure.
    error = None if outcome.replayed else not_completed(outcome.prediction)
    return error or JSONResponse(prediction_out(outcome.prediction).model_dump(mode="json"))


@router.get(
    "/predictions/{prediction_id}",
    summary="A prediction's result (400 while still processing)",
    responses=error_responses(
        "prediction_pending", "not_authenticated", "prediction_not_found", "rate_limited"
    ),
)
async def get_prediction(access: PredictionForReading) -> PredictionOut:
    return prediction_out(prediction_service.done(access))


@router.post(
    "/predictions/{prediction_id}/cancel",
    summary="Cancel a queued or running prediction (409 once finished)",
    description="A queued prediction is cancelled at once and never runs; a running one is "
    "cancelled at once too, and its worker stops the model as soon as it hears of it (a result "
    "that comes anyway is discarded). The answer is the prediction, `status: cancelled`, without "
    "output. One that has finished (completed, failed, cancelled or expired) is 409 "
    "`prediction_finished`. Developers cancel their own predictions, admins anyone's.",
    responses=error_responses(
        "not_authenticated",
        "forbidden",
        "prediction_not_found",
        "prediction_finished",
        "rate_limited",
    ),
)
async def cancel_prediction(
    access: PredictionForCancel, db: DbSession, request: Request
) -> PredictionOut:
    cancelled = await prediction_service.cancel(db, access, request.app.state.notifier)
    return prediction_out(cancelled)


@router.get(
    "/deployments/{deployment_id}/predictions",
    summary="A deployment's predictions",
    responses=error_responses(
        "not_authenticated", "deployment_not_found", "validation_error", "rate_limited"
    ),
)
async def list_predictions(
    access: DeploymentForPredictionList,
    db: DbSession,
    page: PageParams,
    response: Response,
    status: Annotated[PredictionStatus | None, Query(description="Only this status.")] = None,
) -> list[PredictionOut]:
    predictions, total = await prediction_service.list_for_deployment(db, access, status, page)
    response.headers["X-Total-Count"] = str(total)
    return [prediction_out(p) for p in predictions]
