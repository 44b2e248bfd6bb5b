import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.models.organization import Role
from app.schemas.common import Name, RequestBody, Text

_ORG_EXAMPLE: dict[str, JsonValue] = {
    "id": "5c1f2f4e-2a7b-4f8e-bb51-0d7f4c5e9a10",
    "name": "Acme ML",
    "invite_code": "Qm9vbGVhbi1pbnZpdGUtY29kZQ",
    "role": "admin",
    "created_at": "2026-11-29T12:00:00Z",
}


class OrganizationIn(RequestBody):
    name: Name

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Acme ML"}]})


class JoinIn(RequestBody):
    invite_code: Annotated[Text, Field(max_length=256)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"invite_code": "Qm9vbGVhbi1pbnZpdGUtY29kZQ"}]}
    )


class OrganizationOut(BaseModel):
    """`invite_code` is shown to admins only; others see null."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ORG_EXAMPLE]})

    id: uuid.UUID
    name: str
    invite_code: str | None = Field(
        description="Shown to admins only (null for everyone else): others join with it."
    )
    role: Role = Field(description="Your role in this organization.")
    created_at: datetime


class MemberOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
                    "username": "ada",
                    "role": "developer",
                    "joined_at": "2026-11-29T12:00:00Z",
                }
            ]
        }
    )

    user_id: uuid.UUID
    username: str
    role: Role
    joined_at: datetime


class RoleIn(RequestBody):
    role: Role

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "viewer"}]})
