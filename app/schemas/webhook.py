from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class WebhookSecretOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}
    )

    secret: str = Field(
        description="The organization's Standard Webhooks signing secret: `whsec_` and the key "
        "in base64. Give it to `standardwebhooks.Webhook(secret).verify(body, headers)`."
    )


class WebhookAttemptOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attempt": 1,
                    "url": "https://hooks.example.com/predictions",
                    "attempted_at": "2026-11-29T12:00:13Z",
                    "status_code": 503,
                    "error": None,
                    "duration_ms": 41.7,
                },
                {
                    "attempt": 2,
                    "url": "https://hooks.example.com/predictions",
                    "attempted_at": "2026-11-29T12:00:18Z",
                    "status_code": 204,
                    "error": None,
                    "duration_ms": 12.3,
                },
            ]
        }
    )

    attempt: int = Field(description="1 for the first attempt, then 2, 3...")
    url: str = Field(description="Where it was sent.")
    attempted_at: datetime
    status_code: int | None = Field(
        description="The receiver's HTTP status; null when it never answered (see `error`)."
    )
    error: str | None = Field(
        description="Why the attempt failed without an answer (refused by the URL guard, "
        "unreachable, no answer in time), or a redirect that was not followed; null otherwise."
    )
    duration_ms: float = Field(description="How long the attempt took, in milliseconds.")
