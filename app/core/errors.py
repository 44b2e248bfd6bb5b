"""Domain errors. Services raise these; one handler (`app/api/errors.py`) maps them to the
contract's body, which `error_response` writes for every error, whoever answers it."""

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

ECHO_LIMIT = 100
"""Characters of any one value sent by the caller that an error body may repeat."""
MESSAGE_LIMIT = 500
"""Characters of any one sentence of an error body."""

# A value quoted as `repr` quotes it (`Unknown dependency 'x'.`), escapes included, longer than
# the limit: opened and closed by the same quote, neither inside a word (`cluster's`).
_LONG_QUOTED = re.compile(
    r"""(?<!\w)(['"])((?:(?!\1)[^\\\n]|\\.){""" + str(ECHO_LIMIT + 1) + r""",})\1(?!\w)"""
)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def bounded(message: str) -> str:
    """`message` with every long quoted value cut to `ECHO_LIMIT` characters, and at most
    `MESSAGE_LIMIT` characters in all: a 500 KB id sent is not sent back (twice)."""
    if len(message) <= ECHO_LIMIT:
        return message
    shortened = _LONG_QUOTED.sub(
        lambda quoted: f"{quoted[1]}{_cut(quoted[2], ECHO_LIMIT)}{quoted[1]}", message
    )
    return _cut(shortened, MESSAGE_LIMIT)


def _bounded_fields(fields: Any) -> Any:
    """`fields` entries: the path (whose keys came from the caller) and the message bounded."""
    if not isinstance(fields, list):
        return fields
    return [
        {
            key: (_cut(value, ECHO_LIMIT) if key == "field" else bounded(value))
            if isinstance(value, str)
            else value
            for key, value in entry.items()
        }
        if isinstance(entry, dict)
        else entry
        for entry in fields
    ]


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """The bytes of every error body: compact UTF-8 JSON, `error` first, then `code`. Whatever
    the caller sent is repeated only in part (`bounded`), whoever wrote the message."""
    if "fields" in extra:
        extra["fields"] = _bounded_fields(extra["fields"])
    return json.dumps(
        {"error": bounded(message), "code": code, **extra},
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    ).encode()


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """Every error response, body and headers: the exception handlers' (`app/api/errors.py`) and
    the edge middleware's (413, 415, 422, 500) alike."""
    return Response(
        error_body(code, message, **extra), status, headers=headers, media_type="application/json"
    )


class SetupError(Exception):
    """A setup that cannot work (a database not migrated, say): the command line prints its
    message, one sentence, and exits non-zero."""


class DomainError(Exception):
    status_code = 400
    default_code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.headers = headers
        self.extra = extra
        super().__init__(self.message)


class NotAuthenticated(DomainError):
    status_code = 401
    default_code = "not_authenticated"
    default_message = "Authentication required."

    @classmethod
    def session_expired(cls, expired_at: datetime) -> "NotAuthenticated":
        at = expired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(message=f"Your session expired at {at}; sign in again.")

    @classmethod
    def session_invalid(cls) -> "NotAuthenticated":
        """A cookie that is tampered with, or names a session logged out or never issued."""
        return cls(message="Your session is no longer valid; sign in again.")


class InvalidCredentials(DomainError):
    status_code = 401
    default_code = "invalid_credentials"
    default_message = "Invalid username or password."


class WrongPassword(DomainError):
    """A signed-in user's current password, given to change it, is wrong: 403, not 401, since the
    session is fine and a client must not take the answer as "signed out"."""

    status_code = 403
    default_code = "wrong_password"
    default_message = "The current password is wrong."


class Forbidden(DomainError):
    status_code = 403
    default_code = "forbidden"
    default_message = "Your role in this organization does not allow this action."


class NotFound(DomainError):
    status_code = 404
    default_code = "not_found"
    default_message = "Not found."


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"
    default_message = "The request conflicts with the current state."


class Unprocessable(DomainError):
    """A well-formed request that the domain rejects (422), optionally naming the fields."""

    status_code = 422
    default_code = "validation_error"
    default_message = "The request is invalid."

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        if field is not None:
            extra["fields"] = [{"field": field, "message": message or self.default_message}]
        super().__init__(code, message, **extra)


# Sentences the contract fixes word for word; the others are "<Resource> not found."
_NOT_FOUND_MESSAGES = {"prediction": "Prediction ID not found."}


def not_found(resource: str) -> NotFound:
    """`not_found("organization")` gives code `organization_not_found` and a matching sentence."""
    label = resource.replace("_", " ")
    message = _NOT_FOUND_MESSAGES.get(resource, f"{label[0].upper()}{label[1:]} not found.")
    return NotFound(f"{resource}_not_found", message)
