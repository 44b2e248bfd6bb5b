import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.models.organization import Role
from app.schemas.common import RequestBody, Text

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class RegisterIn(RequestBody):
    username: Username
    email: Annotated[EmailStr, Field(max_length=254)]
    password: Password

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"username": "ada", "email": "ada@example.com", "password": "correct-horse-42"}
            ]
        }
    )


class LoginIn(RequestBody):
    # Login does not re-validate the format: any wrong input is just invalid credentials.
    username: Annotated[Text, Field(max_length=256)]
    password: Annotated[str, Field(max_length=1024)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "ada", "password": "correct-horse-42"}]}
    )


class PasswordChangeIn(RequestBody):
    current_password: Annotated[
        str,
        Field(
            max_length=1024,
            description="The password you signed in with. A wrong one is 403 "
            "`wrong_password` (not otherwise checked, as at login).",
        ),
    ]
    new_password: Annotated[
        Password,
        Field(description="8-128 characters, as at registration; must differ from the current."),
    ]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"current_password": "correct-horse-42", "new_password": "battery-staple-97"}
            ]
        }
    )

    @field_validator("new_password")
    @classmethod
    def _differs_from_the_current(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("current_password"):
            raise ValueError("must differ from the current password")
        return value


class UserOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
                    "username": "ada",
                    "email": "ada@example.com",
                    "created_at": "2026-11-29T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    username: str
    email: str
    created_at: datetime


class MyOrganization(BaseModel):
    id: uuid.UUID
    name: str
    role: Role


class MeOut(UserOut):
    organizations: list[MyOrganization]
