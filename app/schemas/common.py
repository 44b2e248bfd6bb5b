"""Shared schema pieces: validated names, the error body, pagination."""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
]


class RequestBody(BaseModel):
    """Request bodies reject unknown keys: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(examples=["Organization not found."])
    code: str = Field(examples=["organization_not_found"])
    fields: list[FieldError] | None = None
    request_id: str | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting the contract's error body for the given statuses."""
    return {status: {"model": ErrorBody} for status in statuses}
