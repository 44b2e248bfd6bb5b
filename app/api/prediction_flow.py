"""Running one prediction from a request, for both predict routes (the platform's
`POST /api/v1/deployments/{id}/predict` and the classic `POST /predict`): which mode the caller
asked for, submitting, handing over to this process's worker, waiting for a synchronous result.
Each route only renders the outcome in its own bodies."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import Unprocessable
from app.models.deployment import Deployment
from app.models.prediction import Prediction, PredictionStatus
from app.schemas.prediction import PredictIn
from app.services import predictions as prediction_service
from app.services.prediction_states import Claimed
from app.services.tenancy import Scoped
from app.workers.worker import Worker

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}

ASYNC_MODE = (
    "`true` (or `1`, `yes`, `on`; any case, surrounding spaces ignored): answer 202 at once and "
    "run the prediction in the background; poll the `Location`. "
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


# The errors of running a prediction, whichever route asked: each route adds those of finding
# its deployment.
RUN_ERRORS = (
    "idempotency_key_reused",
    "validation_error",
    "callback_url_refused",
    "rate_limited",
    "prediction_failed",
    "prediction_cancelled",
    "prediction_expired",
    "model_unavailable",
    "no_worker",
)


@dataclass(frozen=True, slots=True)
class Asked:
    """What the caller's headers ask of a predict call."""

    asynchronous: bool
    idempotency_key: str | None


async def asked(
    async_mode: Annotated[str | None, Header(alias="Async-Mode", description=ASYNC_MODE)] = None,
    prefer: Annotated[str | None, Header(description=PREFER)] = None,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, description=IDEMPOTENCY_KEY)
    ] = None,
) -> Asked:
    return Asked(wants_async(async_mode, prefer), idempotency_key)


AskedHeaders = Annotated[Asked, Depends(asked)]


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


@dataclass(frozen=True, slots=True)
class Outcome:
    prediction: Prediction
    # Finished (whichever way); otherwise it runs on and the caller is answered 202.
    done: bool
    replayed: bool
    # Live workers that run its model when it was accepted (0: it waits for one to start).
    workers: int = 1


async def run(
    request: Request,
    db: AsyncSession,
    access: Scoped[Deployment],
    body: PredictIn,
    asynchronous: bool,
    idempotency_key: str | None,
) -> Outcome:
    """Store the prediction (durable before any answer), then wait for it when synchronous, at
    most SYNC_PREDICT_TIMEOUT seconds. `access` holds the deployment FOR SHARE in `db`'s
    transaction, which `submit` commits; the prediction is created by `access.user_id`."""
    state = request.app.state
    settings: Settings = state.settings
    worker: Worker | None = state.worker
    # A synchronous prediction that this process's worker can run is inserted claimed by it and
    # handed over: no claim transaction, no wake-up round trip.
    owner = None if asynchronous or worker is None else worker.owns_next(access.row.model)
    submitted = await prediction_service.submit(
        db,
        access,
        access.user_id,
        body.input,
        idempotency_key,
        state.liveness,
        synchronous=not asynchronous,
        owner=owner,
        options=prediction_service.options_within(
            settings, body.ttl_seconds, body.timeout_seconds, body.callback_url
        ),
    )
    prediction = submitted.prediction
    if prediction.status.is_done:
        return Outcome(prediction, done=True, replayed=submitted.replayed)
    if not submitted.replayed:
        if worker is not None and owner is not None:
            worker.adopt(
                Claimed(prediction.id, prediction.deployment_id, prediction.model, body.input)
            )
        else:
            # This process's own worker, if it runs one, claims at once rather than when the
            # NOTIFY comes back from the database (the NOTIFY wakes the other workers).
            state.notifier.wake()
    if asynchronous or submitted.replayed:
        return Outcome(prediction, False, submitted.replayed, submitted.workers)
    finished = await prediction_service.wait_until_done(
        state.sessionmaker, state.notifier, prediction.id, settings.sync_predict_timeout
    )
    if finished is None:
        return Outcome(prediction, done=False, replayed=False)
    return Outcome(finished, done=True, replayed=False)


# How a prediction that did not complete is answered where a result was expected: status, code,
# sentence.
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


def not_completed(prediction: Prediction) -> JSONResponse | None:
    """The error answer of a prediction that finished without completing (failed, cancelled,
    expired); None for a completed one."""
    found = _NOT_COMPLETED.get(prediction.status)
    if found is None:
        return None
    http_status, code, sentence = found
    if prediction.status == PredictionStatus.failed:
        sentence = f"{sentence}: {prediction.error}"
    return JSONResponse(
        {"error": sentence, "code": code, "prediction_id": str(prediction.id)}, http_status
    )


def accepted_response(body: dict[str, object], location: str) -> JSONResponse:
    return JSONResponse(body, status.HTTP_202_ACCEPTED, headers={"Location": location})
