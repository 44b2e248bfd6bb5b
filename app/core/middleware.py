"""Pure ASGI middleware: request guards, security headers, access log, metrics, last-resort 500."""

import json
import logging
import re
import time
from typing import Any

from asgi_correlation_id import correlation_id
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import HTTP_DURATION, HTTP_REQUESTS

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

access_log = logging.getLogger("app.access")
error_log = logging.getLogger("app.errors")


def is_sane_request_id(value: str) -> bool:
    """Echo the caller's id only when it is short and printable: it lands in logs and headers."""
    return bool(REQUEST_ID_PATTERN.match(value))


async def send_error(send: Send, status: int, code: str, message: str, **extra: Any) -> None:
    body = json.dumps({"error": message, "code": code, **extra}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body reader re-raises it instead of answering 400."""

    def __init__(self) -> None:
        super().__init__(413)


class RequestGuardMiddleware:
    """415 for a body that is not JSON (so a cross-site form cannot act with the cookie);
    413 past 1 MiB, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length_header = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        try:
            length = int(length_header) if length_header is not None else 0
        except ValueError:
            await send_error(send, 400, "bad_request", "Invalid Content-Length header.")
            return
        if length > self.max_body_bytes:
            await send_error(send, 413, "payload_too_large", "The request body exceeds 1 MiB.")
            return
        if (length > 0 or chunked) and not _is_json(headers.get(b"content-type", b"")):
            await send_error(
                send, 415, "unsupported_media_type", "Request bodies must be application/json."
            )
            return

        received = 0
        response_started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await send_error(send, 413, "payload_too_large", "The request body exceeds 1 MiB.")


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def route_template(scope: Scope) -> str:
    """`/api/v1/organizations/{org_id}` for any org id: bounded label cardinality. Rebuilt from the
    matched path parameters, which works however the routers were nested."""
    if "endpoint" not in scope:
        return "unmatched"
    segments = scope["path"].split("/")
    for name, value in scope.get("path_params", {}).items():
        for index in range(len(segments) - 1, -1, -1):
            if segments[index] == str(value):
                segments[index] = "{" + name + "}"
                break
    return "/".join(segments)


class AccessLogMiddleware:
    """One log line and one metrics sample per request, labelled by route template, not raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            duration = time.perf_counter() - start
            route = route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route, str(status)).observe(duration)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                },
            )


class UnhandledErrorMiddleware:
    """Turns any exception that escaped the handlers into the contract's generic 500 body, logged
    with its request id, and inside the other middleware so the 500 still gets their headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope.get("path")})
            if not response_started:
                await send_error(
                    send,
                    500,
                    "internal_error",
                    "An unexpected error occurred.",
                    request_id=correlation_id.get(),
                )
