"""Shared schema pieces: validated names, the error body, pagination."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same rule for JSON Schema (ECMA-262) readers, who cannot trim first: any surrounding
# whitespace (Unicode's White_Space, what pydantic trims), then 1-100 characters without control
# characters that begin and end with neither. No `maxLength`: it would count what is trimmed.
# Whitespace is spelled out: `\s` differs between regex engines (Python's adds U+001C-U+001F).
_WHITE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
_SPACE = rf"[{_WHITE}]"
_INNER = rf"[^{_CONTROLS}]"
_EDGE = rf"[^{_WHITE}{_CONTROLS}]"
NAME_PATTERN = rf"^{_SPACE}*{_EDGE}(?:{_INNER}{{0,98}}{_EDGE})?{_SPACE}*$"


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_characters),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": NAME_PATTERN,
            "description": "1-100 characters after trimming surrounding whitespace; no control "
            "characters (U+0000-U+001F, U+007F-U+009F).",
        }
    ),
]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Free text that is stored or queried: everything but NUL, which PostgreSQL text cannot hold.
Text = Annotated[str, AfterValidator(_no_nul)]


def _iso_8601(value: Any) -> datetime:
    """Only an ISO 8601 string: pydantic's own parsing also takes numbers (and numeric strings)
    as Unix times, which the published `date-time` format does not allow."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time with a time zone")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # stored in UTC: a moment past its range cannot be
    except (ValueError, OverflowError):
        raise ValueError("must be an ISO 8601 date and time with a time zone") from None
    return moment


def is_unset(value: object) -> bool:
    """`exclude_if` of the optional fields a body shows only when set: a caller who uses none of
    them gets the body the contract always had."""
    return value is None


# A moment as the API takes it: ISO 8601 with a time zone (`2027-03-04T00:00:00Z`).
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Any string in a JSON document, keys included, with a lone surrogate; a walk without
    recursion, so that no nesting can reach the interpreter's recursion limit."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class RequestBody(BaseModel):
    """Request bodies reject unknown keys (a typo must not be silently ignored) and strings that
    are not valid Unicode (a lone surrogate escape), which no database could store."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _reject_lone_surrogates(cls, data: Any) -> Any:
        if _has_lone_surrogate(data):
            raise ValueError("strings must be valid Unicode (no lone surrogates)")
        return data


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(
        examples=["Organization not found."], description="A sentence for people; may change."
    )
    code: str = Field(
        examples=["organization_not_found"],
        description="The stable, machine-readable part. Each error response of each operation "
        "lists the codes it can carry.",
    )
    fields: list[FieldError] | None = Field(
        default=None, description="422 only: what was wrong, as dotted paths into the request."
    )
    request_id: str | None = Field(
        default=None, description="500 only: the request id, as in the logs and `X-Request-ID`."
    )


# Every error code the API answers with: its status and a typical sentence (docs/API.md, "Every
# error code"). The routes' `error_responses(...)` name codes from here, so that the published
# schema lists, for each error status of each operation, the codes it can carry.
ERROR_CODES: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "bad_request": (400, "Invalid Content-Length header."),
        "prediction_pending": (400, "Prediction is still being processed."),
        "not_authenticated": (401, "Authentication required."),
        "invalid_credentials": (401, "Invalid username or password."),
        "forbidden": (403, "Your role in this organization does not allow this action."),
        "organization_not_found": (404, "Organization not found."),
        "cluster_not_found": (404, "Cluster not found."),
        "api_key_not_found": (404, "API key not found."),
        "deployment_not_found": (404, "Deployment not found."),
        "prediction_not_found": (404, "Prediction ID not found."),
        "member_not_found": (404, "Member not found."),
        "invite_code_not_found": (404, "No organization has that invite code."),
        "cross_site_request": (403, "Requests sent by another site's pages are refused."),
        "wrong_password": (403, "The current password is wrong."),
        "not_found": (404, "Not found."),
        "default_deployment_unset": (
            404,
            "No default deployment is configured: set DEFAULT_DEPLOYMENT_ID to the deployment "
            "that /predict serves.",
        ),
        "method_not_allowed": (405, "Method not allowed on this route."),
        "username_taken": (409, "That username is already taken."),
        "email_taken": (409, "That email address is already registered."),
        "already_member": (409, "You are already a member of this organization."),
        "last_admin": (409, "An organization must keep at least one admin."),
        "cluster_name_taken": (409, "This organization already has a cluster of that name."),
        "capacity_below_allocated": (
            409,
            "The new capacity is below what running deployments already use.",
        ),
        "cluster_in_use": (409, "The cluster still has pending or running deployments."),
        "organization_in_use": (
            409,
            "The organization still has pending or running deployments.",
        ),
        "invalid_transition": (409, "A completed deployment cannot become completed."),
        "deployment_not_running": (409, "The deployment is pending; predictions need it running."),
        "idempotency_key_reused": (409, "This Idempotency-Key was used with a different input."),
        "prediction_finished": (409, "The prediction is already completed."),
        "prediction_cancelled": (409, "The prediction was cancelled before it finished."),
        "payload_too_large": (413, "The request body exceeds 1 MiB."),
        "unsupported_media_type": (415, "Request bodies must be application/json."),
        "validation_error": (422, "The request is invalid; see `fields`."),
        "exceeds_cluster_capacity": (
            422,
            "The request is larger than the cluster's capacity; it could never run.",
        ),
        "unknown_dependency": (422, "Unknown dependency 'nope'."),
        "unknown_model": (422, "Unknown model 'bert'; see GET /api/v1/models."),
        "unknown_strategy": (
            422,
            "Unknown preemption strategy 'fifo'; see GET /api/v1/scheduling/strategies.",
        ),
        "callback_url_refused": (
            422,
            "callback_url is refused: 10.0.0.1 is a private address (not in "
            "WEBHOOK_ALLOWED_NETWORKS).",
        ),
        "rate_limited": (429, "Too many requests; retry later."),
        "internal_error": (500, "An unexpected error occurred."),
        "prediction_failed": (502, "The model failed: <the runtime's message>"),
        "model_unavailable": (503, "The 'distilbert-sst2' model cannot serve: <why>."),
        "no_worker": (503, "No prediction worker that runs 'mock' is alive; start one ..."),
        "deployment_unavailable": (
            503,
            "The default deployment is pending (preempted): ... /predict answers again once it "
            "runs.",
        ),
        "database_unavailable": (503, "The database is unavailable; retry shortly."),
        "prediction_expired": (
            504,
            "The prediction expired: no worker started it within its ttl_seconds.",
        ),
    }
)
ERROR_CODES_KEY = "x-error-codes"
"""The key of each documented error response that lists its codes, machine-readably."""

# Fixed words, not `HTTPStatus.phrase`, which differs between Python versions (422).
_STATUS_WORDS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Invalid request",
    429: "Too many requests",
    502: "The model failed",
    503: "Unavailable",
    504: "Expired",
}
# The one field a domain 422 names in `fields`, and what other codes add to the body.
_FIELD_OF = {
    "exceeds_cluster_capacity": "resources",
    "unknown_dependency": "depends_on",
    "unknown_model": "model",
    "unknown_strategy": "preemption_strategy",
    "callback_url_refused": "callback_url",
}
_EXTRAS: dict[str, dict[str, Any]] = {
    "validation_error": {"fields": [{"field": "priority", "message": "Input should be ..."}]},
    "prediction_failed": {"prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d"},
    "prediction_cancelled": {"prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d"},
    "prediction_expired": {"prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d"},
}


def _example(code: str) -> dict[str, Any]:
    message = ERROR_CODES[code][1]
    body: dict[str, Any] = {"error": message, "code": code, **_EXTRAS.get(code, {})}
    if code in _FIELD_OF:
        body["fields"] = [{"field": _FIELD_OF[code], "message": message}]
    return {"value": body}


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can return: one entry per status, with the
    contract's error body, the codes in its description (`404: "Not found: `cluster_not_found`"`)
    and in `x-error-codes`, and one example body per code: `error_responses("cluster_not_found",
    "rate_limited")`."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        if code not in ERROR_CODES:
            raise ValueError(f"{code!r} is not an error code: name one of `ERROR_CODES`")
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    return {
        status: {
            "model": ErrorBody,
            "description": f"{_STATUS_WORDS.get(status) or HTTPStatus(status).phrase}: "
            + ", ".join(f"`{code}`" for code in listed),
            ERROR_CODES_KEY: listed,
            "content": {
                "application/json": {"examples": {code: _example(code) for code in listed}}
            },
        }
        for status, listed in sorted(by_status.items())
    }
