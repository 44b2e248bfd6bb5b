import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models.organization import Role
from app.schemas.common import Name, RequestBody, Timestamp

_KEY_EXAMPLE: dict[str, Any] = {
    "id": "9a0c6b1e-4d2f-4c7a-8e5b-1f2a3b4c5d6e",
    "name": "nightly-batch",
    "role": "developer",
    "prefix": "mlops_3q2-7wEv",
    "created_by": "0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
    "service_account_id": "6e5d4c3b-2a19-4f8e-9d7c-6b5a4f3e2d1c",
    "created_at": "2026-12-04T09:00:00Z",
    "expires_at": "2027-03-04T00:00:00Z",
    "last_used_at": None,
    "revoked_at": None,
}


class ApiKeyIn(RequestBody):
    name: Name
    role: Annotated[
        Literal["viewer", "developer"],
        Field(description="What the key may do in the organization: viewer or developer."),
    ]
    expires_at: Timestamp | None = Field(
        default=None,
        description="When it stops working (ISO 8601 with a time zone); never, if absent.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "nightly-batch", "role": "developer", "expires_at": "2027-03-04T00:00:00Z"}
            ]
        }
    )


class ApiKeyOut(BaseModel):
    """An API key as listed: never its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [_KEY_EXAMPLE]})

    id: uuid.UUID
    name: str
    role: Role
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_by: uuid.UUID | None = Field(description="The admin who created it (null: gone).")
    service_account_id: uuid.UUID = Field(
        description="The user id the key acts as: `created_by` of what it creates."
    )
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Its last request, to the minute.")
    revoked_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    """The key just created, with its secret: shown this once, stored only as a hash."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_KEY_EXAMPLE, "key": "mlops_3q2-7wEvXg5b0cVq8c1m2Hk4ZpR6tYuI9oPaSdFgHjKlQ"}
            ]
        }
    )

    key: str = Field(description="`Authorization: Bearer <key>`. Shown once: keep it safe.")
