from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.api.deps import (
    CurrentUser,
    DbSession,
    DeploymentForPrediction,
    DeploymentForPredictionList,
    PageParams,
    PredictionForReading,
    SettingsDep,
)
from app.core.rate_limit import rate_limit_scope
from app.models.prediction import Prediction, PredictionStatus
from app.schemas.common import error_responses
from app.schemas.prediction import AcceptedOut, PredictIn, PredictionOut
from app.services import predictions as prediction_service

router = APIRouter(tags=["predictions"])


def prediction_out(prediction: Prediction) -> PredictionOut:
    return PredictionOut(
        prediction_id=prediction.id,
        deployment_id=prediction.deployment_id,
        model=prediction.model,
        status=prediction.status,
        input=prediction.input,
        output=prediction.output,
        error=prediction.error,
        created_at=prediction.created_at,
        completed_at=prediction.completed_at,
    )


def wants_async(async_mode: str | None, prefer: str | None) -> bool:
    if async_mode is not None and async_mode.strip().lower() == "true":
        return True
    preferences = {p.strip().lower() for p in (prefer or "").split(",")}
    return "respond-async" in preferences


def accepted(prediction: Prediction) -> JSONResponse:
    body = AcceptedOut(prediction_id=prediction.id).model_dump(mode="json")
    location = f"/api/v1/predictions/{prediction.id}"
    return JSONResponse(body, status.HTTP_202_ACCEPTED, headers={"Location": location})


def finished(prediction: Prediction, replayed: bool) -> JSONResponse:
    if prediction.status == PredictionStatus.failed and not replayed:
        return JSONResponse(
            {
                "error": f"The model failed: {prediction.error}",
                "code": "prediction_failed",
                "prediction_id": str(prediction.id),
            },
            status.HTTP_502_BAD_GATEWAY,
        )
    return JSONResponse(prediction_out(prediction).model_dump(mode="json"))


@router.post(
    "/deployments/{deployment_id}/predict",
    summary="Run a prediction (sync by default; `Async-Mode: true` for 202 + poll)",
    response_model=PredictionOut,
    responses={
        202: {"model": AcceptedOut, "description": "Accepted; poll the Location."},
        **error_responses(401, 403, 404, 409, 422, 429, 502),
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
    async_mode: Annotated[str | None, Header(alias="Async-Mode")] = None,
    prefer: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> Response:
    submitted = await prediction_service.submit(db, access, user.id, body.input, idempotency_key)
    prediction = submitted.prediction
    if prediction.status.is_done:
        return finished(prediction, submitted.replayed)
    if wants_async(async_mode, prefer) or submitted.replayed:
        return accepted(prediction)
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
    responses=error_responses(400, 401, 404),
)
async def get_prediction(access: PredictionForReading) -> PredictionOut:
    return prediction_out(prediction_service.done(access))


@router.get(
    "/deployments/{deployment_id}/predictions",
    summary="A deployment's predictions",
    responses=error_responses(401, 404, 422),
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
