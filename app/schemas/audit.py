import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "c2d3e4f5-0a1b-4c2d-8e3f-4a5b6c7d8e9f",
                    "at": "2026-12-04T09:00:00Z",
                    "actor_type": "user",
                    "actor_id": "0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
                    "actor_name": "ada",
                    "action": "membership.role_changed",
                    "target_type": "user",
                    "target_id": "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d",
                    "before": {"role": "developer"},
                    "after": {"role": "admin"},
                    "request_id": "5f0c1b2a3d4e4f5a8b9c0d1e2f3a4b5c",
                }
            ]
        }
    )

    id: uuid.UUID
    at: datetime
    actor_type: Literal["user", "api_key", "system"]
    actor_id: uuid.UUID = Field(description="The user's id, or the API key's id.")
    actor_name: str = Field(description="The username or the key's name, as it was then.")
    action: str
    target_type: str
    target_id: uuid.UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None = Field(description="The request's `X-Request-ID`.")
