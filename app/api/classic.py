"""The classic single-model API, for clients written against a one-model server:
`POST /predict` and `GET /predict/{prediction_id}`, bound to the deployment DEFAULT_DEPLOYMENT_ID
names. Only the bodies are the classic ones: every call is an ordinary prediction of that
deployment (queue, workers, limits, metrics, Idempotency-Key), and callers are signed in as on
the platform's routes, or anonymous where PUBLIC_PREDICT allows it."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from app.api import prediction_flow
from app.api.deps import (
    DbSession,
    OptionalUser,
    SettingsDep,
    enforce_rate_limit,
    not_authenticated,
    presents_credentials,
)
from app.api.prediction_flow import not_completed
from app.core.errors import Conflict, Unprocessable
from app.core.rate_limit import address_key, rate_limit_scope
from app.schemas.classic import (
    PREDICTION_NOT_FOUND,
    PREDICTION_PENDING,
    ClassicAcceptedOut,
    ClassicErrorOut,
    ClassicPredictIn,
    ClassicResultOut,
    classic_output,
)
from app.schemas.common import error_responses
from app.services import default_deployment, public_callers
from app.services.auth import Principal

router = APIRouter(tags=["classic"], dependencies=[Depends(enforce_rate_limit)])


async def classic_caller(
    request: Request, user: OptionalUser, settings: SettingsDep
) -> Principal | None:
    """The signed-in caller, or None for an anonymous one where PUBLIC_PREDICT allows it. A caller
    who sent credentials is held to them (401 when they are no longer valid), public or not."""
    default_deployment.configured_id(settings)  # unset: 404 for everyone, nothing to guard
    if user is not None:
        return user
    if presents_credentials(request) or not settings.public_predict:
        raise await not_authenticated(request)
    return None


ClassicCaller = Annotated[Principal | None, Depends(classic_caller)]


def _classic_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(ClassicErrorOut(error=message).model_dump(), status)


def _classic_error_response(description: str, message: str) -> dict[str, Any]:
    return {
        "model": ClassicErrorOut,
        "description": description,
        "content": {"application/json": {"example": {"error": message}}},
    }


@router.post(
    "/predict",
    summary="Run a prediction on the default deployment (classic single-model API)",
    response_model=dict[str, Any],
    description="The body is `input` (or `text`, as sentiment demos send it). Synchronous by "
    'default: 200 with the model\'s answer itself and `input` beside it, `{"input", '
    '"result"}` for the mock model. With `Async-Mode: true` or `Prefer: respond-async`: 202 '
    '`{"message": "Request received. Processing asynchronously.", "prediction_id"}`; poll '
    "`GET /predict/{prediction_id}`. The prediction is an ordinary one of the deployment "
    "DEFAULT_DEPLOYMENT_ID names: in its prediction list, its metrics, its limits. 503 "
    "`deployment_unavailable` with `Retry-After` while that deployment is not running. Signed in "
    "(a session, or an API key of the deployment's organization; developer or admin), or "
    "anonymous where PUBLIC_PREDICT=true (then without `callback_url`, and with "
    "`Idempotency-Key` scoped to the client address). A replayed prediction that failed, was "
    "cancelled or expired answers as the first call did (502, 409, 504).",
    responses={
        200: {
            "description": "The model's answer, with `input` beside it.",
            "content": {"application/json": {"example": {"input": "hello", "result": "13742"}}},
        },
        202: {
            "model": ClassicAcceptedOut,
            "description": "Accepted; poll the `Location`.",
            "headers": {
                "Location": {
                    "description": "`/predict/{prediction_id}`, to poll.",
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(
            "not_authenticated",
            "forbidden",
            "default_deployment_unset",
            "deployment_not_found",
            "deployment_unavailable",
            *prediction_flow.RUN_ERRORS,
        ),
    },
)
@rate_limit_scope("predict")
async def classic_predict(
    body: ClassicPredictIn,
    caller: ClassicCaller,
    db: DbSession,
    settings: SettingsDep,
    request: Request,
    asked: prediction_flow.AskedHeaders,
) -> Response:
    idempotency_key = asked.idempotency_key
    if caller is None:
        if body.callback_url is not None:
            # Signed with the organization's webhook secret: not for strangers to direct.
            raise Unprocessable(
                "callback_url_refused",
                "callback_url is refused: it needs a signed-in caller (a session or an API key).",
                field="callback_url",
            )
        idempotency_key = public_callers.idempotency_key(address_key(request), idempotency_key)
    access = await default_deployment.for_prediction(db, settings, caller)
    try:
        outcome = await prediction_flow.run(
            request, db, access, body, asked.asynchronous, idempotency_key
        )
    except Conflict as refused:
        if refused.code != "deployment_not_running":
            raise
        raise await default_deployment.unavailable(db, access.row, caller) from None
    prediction = outcome.prediction
    if not outcome.done:
        accepted = ClassicAcceptedOut(prediction_id=prediction.id).model_dump(mode="json")
        return prediction_flow.accepted_response(accepted, f"/predict/{prediction.id}")
    return not_completed(prediction) or JSONResponse(classic_output(prediction))


@router.get(
    "/predict/{prediction_id}",
    summary="A prediction's result (classic single-model API; 400 while still processing)",
    description="Answers only for predictions of the default deployment; any other id, "
    'whatever exists, is 404 `{"error": "Prediction ID not found."}`. An anonymous caller '
    "(PUBLIC_PREDICT=true) reads only anonymous predictions. A prediction that failed, was "
    "cancelled or expired is answered as a synchronous call would have been (502, 409, 504).",
    response_model=ClassicResultOut,
    responses={
        400: _classic_error_response("Still queued or running.", PREDICTION_PENDING),
        404: _classic_error_response(
            "Not a prediction of the default deployment that this caller may read; or "
            "`default_deployment_unset` (the platform's error body) when no default is "
            "configured.",
            PREDICTION_NOT_FOUND,
        ),
        **error_responses(
            "not_authenticated",
            "rate_limited",
            "prediction_failed",
            "prediction_cancelled",
            "prediction_expired",
        ),
    },
)
async def classic_result(
    prediction_id: str, caller: ClassicCaller, db: DbSession, settings: SettingsDep
) -> Response:
    prediction = await default_deployment.find_prediction(db, settings, caller, prediction_id)
    if prediction is None:
        return _classic_error(404, PREDICTION_NOT_FOUND)
    if not prediction.status.is_done:
        return _classic_error(400, PREDICTION_PENDING)
    result = ClassicResultOut(prediction_id=prediction.id, output=classic_output(prediction))
    return not_completed(prediction) or JSONResponse(result.model_dump(mode="json"))
