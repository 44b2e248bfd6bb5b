"""One pure ASGI middleware for what every request goes through: request guards, security headers,
access log, metrics, last-resort 500. One layer, not four: each layer is a coroutine and a `send`
wrapper on every request."""

import logging
import re
import time
from typing import Any

from asgi_correlation_id import correlation_id
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import error_response
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
    """The middleware's own answers (413, 415, 500), byte for byte as the exception handlers
    write theirs: one `error_response` builds both."""
    response = error_response(status, code, message, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": list(response.raw_headers),
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body reader re-raises it instead of answering 400."""

    def __init__(self) -> None:
        super().__init__(413)


def route_template(scope: Scope) -> str:
    """`/api/v1/organizations/{org_id}` for any org id: bounded label cardinality. Rebuilt from the
    matched path parameters, which works however the routers were nested."""
    if "endpoint" not in scope:
        return "unmatched"
    path_params = scope.get("path_params")
    if not path_params:
        return str(scope["path"])
    segments = scope["path"].split("/")
    for name, value in path_params.items():
        for index in range(len(segments) - 1, -1, -1):
            if segments[index] == str(value):
                segments[index] = "{" + name + "}"
                break
    return "/".join(segments)


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


def _rejection(headers: dict[bytes, bytes], max_body_bytes: int) -> tuple[int, str, str] | None:
    """Why a request with a body is refused before the app reads it, if it is."""
    length_header = headers.get(b"content-length")
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    try:
        length = int(length_header) if length_header is not None else 0
    except ValueError:
        return 400, "bad_request", "Invalid Content-Length header."
    if length > max_body_bytes:
        return 413, "payload_too_large", "The request body exceeds 1 MiB."
    if (length > 0 or chunked) and not _is_json(headers.get(b"content-type", b"")):
        return 415, "unsupported_media_type", "Request bodies must be application/json."
    return None


class EdgeMiddleware:
    """Per HTTP request, from the outside in:

    - one access log line and one metrics sample, labelled by route template, not raw path;
    - the security headers on every response, errors included;
    - 415 for a body that is not JSON (so a cross-site form cannot act with the cookie), 413 past
      1 MiB, whether announced by Content-Length or streamed;
    - any exception that escaped the handlers becomes the contract's generic 500 body, logged with
      its request id (and still gets the headers, and is still logged and counted).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what is logged if the app never answers
        started = False

        async def edge_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            if scope["method"] in _BODY_METHODS:
                rejection = _rejection(dict(scope["headers"]), self.max_body_bytes)
                if rejection is not None:
                    await send_error(edge_send, *rejection)
                    return
                receive = self._capped(receive)
            await self.app(scope, receive, edge_send)
        except BodyTooLarge:
            if not started:
                await send_error(
                    edge_send, 413, "payload_too_large", "The request body exceeds 1 MiB."
                )
        except Exception:
            error_log.exception("unhandled error", extra={"path": scope.get("path")})
            if not started:
                await send_error(
                    edge_send,
                    500,
                    "internal_error",
                    "An unexpected error occurred.",
                    request_id=correlation_id.get(),
                )
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _capped(self, receive: Receive) -> Receive:
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        return capped_receive

    @staticmethod
    def _record(scope: Scope, status: int, duration: float) -> None:
        route = route_template(scope)
        method = scope["method"]
        labels = (method, route, str(status))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_DURATION.labels(*labels).observe(duration)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                },
            )
