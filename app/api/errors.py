"""Every error, whatever raised it, leaves in the contract's shape: {"error", "code", ...}."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from slowapi.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from app.core.errors import DomainError, error_response
from app.db.outage import is_database_outage

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication required."),
    403: ("forbidden", "You are not allowed to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed on this route."),
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _json_position(document: object, position: int) -> str:
    """`line 1, column 19` (both from 1, as Python's json module counts) for a character offset."""
    if not isinstance(document, str) or not 0 <= position <= len(document):
        return f"character {position + 1}"
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return f"line {line}, column {column}"


# pydantic counts every length in "items"; say what is counted: characters of a string, entries
# of a list (a 100,001-character prediction input read "at most 100000 items").
_UNITS = {True: ("character", "characters"), False: ("entry", "entries")}


def _length_message(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    is_text = isinstance(error.get("input"), str)
    kind = "String" if is_text else str(ctx.get("field_type", "Value"))
    limit = ctx.get("max_length") if error["type"] == "too_long" else ctx.get("min_length")
    one, many = _UNITS[is_text]
    bound = "at most" if error["type"] == "too_long" else "at least"
    message = f"{kind} should have {bound} {limit} {one if limit == 1 else many}"
    actual = ctx.get("actual_length")
    return message if actual is None else f"{message}, not {actual}"


def _field_error(error: Mapping[str, Any], body: object) -> dict[str, str]:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type")
    if kind == "json_invalid":
        # FastAPI reports the decoder's character offset as the location: `("body", 18)`.
        position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        reason = (error.get("ctx") or {}).get("error", "not valid JSON")
        return {
            "field": "body",
            "message": f"Invalid JSON at {_json_position(body, position)}: {reason}",
        }
    if kind in ("too_long", "too_short"):
        return {"field": _field_path(loc), "message": _length_message(error)}
    return {"field": _field_path(loc), "message": str(error.get("msg", ""))}


async def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers, **exc.extra)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = [_field_error(err, exc.body) for err in exc.errors()]
    return error_response(
        422, "validation_error", "The request is invalid; see `fields`.", fields=fields
    )


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _method_rank(method: str) -> tuple[int, str]:
    return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER), method)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the resource at `path` answers (RFC 9110's `Allow`); Starlette's router
    names only those of the first route whose path matched. Of the routes whose template matches,
    those with the most literal segments are the resource: `/organizations/join` is the join
    route's, not an organization whose id would be `join`."""
    matching: list[tuple[int, set[str]]] = []
    for context in iter_route_contexts(app.routes):
        path_regex = getattr(context, "path_regex", None)
        if context.methods and context.path and path_regex and path_regex.match(path):
            literal = sum(1 for part in context.path.split("/") if not part.startswith("{"))
            matching.append((literal, set(context.methods)))
    most = max((literal for literal, _ in matching), default=0)
    methods = set().union(*(found for literal, found in matching if literal == most))
    return sorted(methods, key=_method_rank)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, say): a validation error here.
        message = "The request body could not be decoded."
        fields = [{"field": "body", "message": message}]
        return error_response(422, "validation_error", message, fields=fields)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "The request failed."))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
        if allowed := allowed_methods(request.app, path):
            headers["Allow"] = ", ".join(allowed)
    return error_response(exc.status_code, code, message, headers=headers)


async def _rate_limited(request: Request, _exc: Exception) -> Response:
    retry_after = request.app.state.rate_limits.retry_after(request)
    return error_response(
        429,
        "rate_limited",
        "Too many requests; retry later.",
        headers={"Retry-After": str(retry_after)},
    )


DATABASE_RETRY_AFTER_SECONDS = 2


async def _database_error(request: Request, exc: Exception) -> Response:
    """The database is away (restarting, unreachable, out of connections): 503, and the caller may
    retry, rather than a 500 with a traceback per request. Any other database error is a bug."""
    if not is_database_outage(exc):
        raise exc
    orig = getattr(exc, "orig", None)
    logger.warning(
        "database unavailable: %s (%s)",
        type(orig or exc).__name__,
        getattr(orig, "sqlstate", None) or "no SQLSTATE",
        extra={"path": request.url.path},
    )
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    for error in (DBAPIError, PoolTimeout):
        app.add_exception_handler(error, _database_error)
