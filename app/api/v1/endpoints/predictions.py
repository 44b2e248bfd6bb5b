from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    CurrentUser,
    DbSession,
    DeploymentForPrediction,
    DeploymentForPredictionList,
    PageParams,
    PredictionForCancel,
    PredictionForReading,
    SettingsDep,
)
from app.core.errors import Unprocessable
from app.core.rate_limit import rate_limit_scope
from app.models.prediction import Prediction, PredictionStatus
from app.schemas.common import error_responses
from app.schemas.prediction import AcceptedOut, PredictIn, PredictionOut, prediction_out
from app.services import predictions as prediction_service
from app.services.prediction_states import Claimed
from app.workers.worker import Worker

router = APIRouter(tags=["predictions"])

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}

ASYNC_MODE = (
    "`true` (or `1`, `yes`, `on`; any case, surrounding spaces ignored): answer 202 at once and "
    "run the prediction in the background; poll `GET /api/v1/predictions/{prediction_id}`. "
    "`false` (or `0`, `no`, `off`, empty) or absent: synchronous, unless `Prefer` asks otherwise. "
    "Any other value is 422 `validation_error`."
)
PREFER = (
    "RFC 7240 preferences, comma-separated: `respond-async` among them means asynchronous (202), "
    "as `Async-Mode: true` does. Other preferences are ignored."
)
IDEMPOTENCY_KEY = (
    "At most 255 characters. Makes a retry safe: scoped to the caller and the deployment, kept 24 "
    "hours. The same key with the same input replays the original prediction (202 while it runs, "
    "200 once finished, even a failed one) without running the model again; with a different "
    "input it is 409 `idempotency_key_reused`."
)


def wants_async(async_mode: str | None, prefer: str | None) -> bool:
    if async_mode is not None:
        value = async_mode.strip().lower()
        if value not in _TRUE | _FALSE:
            raise Unprocessable(
                message=f"Async-Mode must be true or false (or 1/0, yes/no, on/off), "
                f"not {async_mode!r}.",
                field="Async-Mode",
            )
        if value in _TRUE:
            return True
    preferences = {p.strip().lower() for p in (prefer or "").split(",")}
    return "respond-async" in preferences


def accepted(prediction: Prediction, workers: int = 1) -> JSONResponse:
    warning = None if workers else "No worker that runs this model is alive; it waits for one."
    body = AcceptedOut(prediction_id=prediction.id, warning=warning).model_dump(
        mode="json", exclude_none=True
    )
    location = f"/api/v1/predictions/{prediction.id}"
    return JSONResponse(body, status.HTTP_202_ACCEPTED, headers={"Location": location})


# How a synchronous prediction that did not complete is answered: status, code, sentence.
_NOT_COMPLETED = {
    PredictionStatus.failed: (status.HTTP_502_BAD_GATEWAY, "prediction_failed", "The model failed"),
    PredictionStatus.cancelled: (
        status.HTTP_409_CONFLICT,
        "prediction_cancelled",
        "The prediction was cancelled before it finished.",
    ),
    PredictionStatus.expired: (
        status.HTTP_504_GATEWAY_TIMEOUT,
        "prediction_expired",
        "The prediction expired: no worker started it within its ttl_seconds.",
    ),
}


def finished(prediction: Prediction, replayed: bool) -> JSONResponse:
    """The finished prediction (200), unless it did not complete and this is not a replay (a
    replay reports the state: it is not a new failure)."""
    not_completed = _NOT_COMPLETED.get(prediction.status)
    if not_completed is None or replayed:
        return JSONResponse(prediction_out(prediction).model_dump(mode="json"))
    http_status, code, sentence = not_completed
    if prediction.status == PredictionStatus.failed:
        sentence = f"{sentence}: {prediction.error}"
    return JSONResponse(
        {"error": sentence, "code": code, "prediction_id": str(prediction.id)}, http_status
    )


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
            "idempotency_key_reused",
            "validation_error",
            "callback_url_refused",
            "rate_limited",
            "prediction_failed",
            "prediction_cancelled",
            "prediction_expired",
            "model_unavailable",
            "no_worker",
        ),
    },
)
@rate_limit_scope("predict")
async def predict(
    body: PredictIn,
    access: DeploymentForPrediction,
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    request: Request,
    async_mode: Annotated[str | None, Header(alias="Async-Mode", description=ASYNC_MODE)] = None,
    prefer: Annotated[str | None, Header(description=PREFER)] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description=IDEMPOTENCY_KEY)
    ] = None,
) -> Response:
    asynchronous = wants_async(async_mode, prefer)
    worker: Worker | None = request.app.state.worker
    # A synchronous prediction that this process's worker can run is inserted claimed by it and
    # handed over: no claim transaction, no wake-up round trip.
    owner = None if asynchronous or worker is None else worker.owns_next(access.row.model)
    submitted = await prediction_service.submit(
        db,
        access,
        user.id,
        body.input,
        idempotency_key,
        request.app.state.liveness,
        synchronous=not asynchronous,
        owner=owner,
        options=prediction_service.options_within(
            settings, body.ttl_seconds, body.timeout_seconds, body.callback_url
        ),
    )
    prediction = submitted.prediction
    if prediction.status.is_done:
        return finished(prediction, submitted.replayed)
    if not submitted.replayed:
        if worker is not None and owner is not None:
            worker.adopt(
                Claimed(prediction.id, prediction.deployment_id, prediction.model, body.input)
            )
        else:
            # This process's own worker, if it runs one, claims at once rather than when the
            # NOTIFY comes back from the database (the NOTIFY wakes the other workers).
            request.app.state.notifier.wake()
    if asynchronous or submitted.replayed:
        return accepted(prediction, submitted.workers)
    done = await prediction_service.wait_until_done(
        request.app.state.sessionmaker,
        request.app.state.notifier,
        prediction.id,
        settings.sync_predict_timeout,
    )
    return accepted(prediction) if done is None else finished(done, replayed=False)


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
