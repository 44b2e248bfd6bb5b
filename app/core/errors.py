"""Domain errors. Services raise these; one handler (`app/api/errors.py`) maps them to the
contract's body."""

from typing import Any


class DomainError(Exception):
    status_code = 400
    default_code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, code: str | None = None, message: str | None = None, **extra: Any) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)


class NotAuthenticated(DomainError):
    status_code = 401
    default_code = "not_authenticated"
    default_message = "Authentication required."


class InvalidCredentials(DomainError):
    status_code = 401
    default_code = "invalid_credentials"
    default_message = "Invalid username or password."


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
