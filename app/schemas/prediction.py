import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.models.prediction import Prediction, PredictionStatus, WebhookState
from app.schemas.common import RequestBody, Text, is_unset


class PredictIn(RequestBody):
    input: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=100_000,
            description="The text for the model: 1-100,000 characters, no NUL.",
        ),
    ]
    ttl_seconds: int | None = Field(
        default=None,
        ge=1,
        description="If no worker has started it this many seconds after it was accepted, it "
        "becomes `expired` without ever running. At most PREDICTION_MAX_TTL_SECONDS (86,400).",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="If it runs longer than this, it is stopped and `failed` with a timeout "
        "reason. At most PREDICTION_MAX_TIMEOUT_SECONDS (3,600).",
    )
    callback_url: Annotated[Text, Field(max_length=2048)] | None = Field(
        default=None,
        description="Where to POST the result, signed (Standard Webhooks), once it is finished; "
        "the deployment's `callback_url` when absent.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"input": "The movie was a delight from start to end."},
                {
                    "input": "The movie was a delight from start to end.",
                    "callback_url": "https://hooks.example.com/predictions",
                },
                {"input": "hello", "ttl_seconds": 60, "timeout_seconds": 30},
            ]
        }
    )


class PredictionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d",
                    "deployment_id": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20",
                    "model": "mock",
                    "status": "completed",
                    "input": "hello",
                    "output": {"input": "hello", "result": "13742"},
                    "error": None,
                    "created_at": "2026-11-29T12:00:00Z",
                    "completed_at": "2026-11-29T12:00:13Z",
                },
                {
                    "prediction_id": "9a4f2d3c-4444-4b6c-9d0e-1f2a3b4c5d6e",
                    "deployment_id": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20",
                    "model": "mock",
                    "status": "completed",
                    "input": "hello",
                    "output": {"input": "hello", "result": "9120"},
                    "error": None,
                    "created_at": "2026-11-29T12:00:00Z",
                    "completed_at": "2026-11-29T12:00:11Z",
                    "callback_url": "https://hooks.example.com/predictions",
                    "webhook_state": "delivered",
                },
                {
                    "prediction_id": "0f5a6b1e-8e0c-4b8e-9d3a-2c1f4e5d6a7b",
                    "deployment_id": "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20",
                    "model": "mock",
                    "status": "cancelled",
                    "input": "hello",
                    "output": None,
                    "error": None,
                    "created_at": "2026-11-29T12:01:00Z",
                    "completed_at": "2026-11-29T12:01:04Z",
                    "expires_at": "2026-11-29T12:02:00Z",
                    "timeout_seconds": 30,
                },
            ]
        }
    )

    prediction_id: uuid.UUID
    deployment_id: uuid.UUID
    model: str
    status: PredictionStatus
    input: str
    output: dict[str, Any] | None = Field(
        description="The model's answer, once `completed`; its shape depends on the model."
    )
    error: str | None = Field(description="Why it failed, once `failed`.")
    created_at: datetime
    completed_at: datetime | None = Field(
        description="When it finished: `completed`, `failed`, `cancelled` or `expired`."
    )
    # The deadline and callback fields appear only on predictions that asked for them: a caller
    # that uses none of them gets the body it always had.
    expires_at: datetime | None = Field(
        default=None,
        exclude_if=is_unset,
        description="Its ttl: not started by then, it expires without running.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        exclude_if=is_unset,
        description="Running longer than this, it fails with a timeout reason.",
    )
    callback_url: str | None = Field(
        default=None,
        exclude_if=is_unset,
        description="Where its result is POSTed, signed, once it is finished.",
    )
    webhook_state: WebhookState | None = Field(
        default=None,
        exclude_if=is_unset,
        description="With a callback_url: `pending` (not finished, or a retry is due), "
        "`delivered` or `failed`.",
    )


def prediction_out(prediction: Prediction) -> PredictionOut:
    """The prediction as the API answers it, and as its callback carries it."""
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
        expires_at=prediction.expires_at,
        timeout_seconds=prediction.timeout_seconds,
        callback_url=prediction.callback_url,
        webhook_state=prediction.webhook_state,
    )


class AcceptedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "Request received. Processing asynchronously.",
                    "prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d",
                }
            ]
        }
    )

    message: str = "Request received. Processing asynchronously."
    prediction_id: uuid.UUID
    # Only when no worker that runs the model was alive to take it.
    warning: str | None = None


class ModelOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "gemma3:1b",
                    "runtime": "ollama",
                    "task": "summarization",
                    "description": "gemma3 1B through Ollama: summarizes text.",
                    "available": False,
                    "detail": "Ollama server unreachable at http://127.0.0.1:11434",
                }
            ]
        }
    )

    name: str
    runtime: str
    task: str
    description: str
    available: bool
    detail: str | None
