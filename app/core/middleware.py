"""One pure ASGI middleware for what every request goes through: request guards, security headers,
access log, metrics, last-resort 500. One layer, not four: each layer is a coroutine and a `send`
wrapper on every request."""

import logging
import re
import time
from array import array
from itertools import accumulate
from typing import Any, NamedTuple

from asgi_correlation_id import correlation_id
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
    """The middleware's own answers (413, 415, 422, 500), byte for byte as the exception handlers
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


class Refusal(NamedTuple):
    """An answer the edge gives instead of the app's."""

    status: int
    code: str
    message: str
    fields: list[dict[str, str]] | None = None

    @classmethod
    def invalid_body(cls, message: str, error: str | None = None) -> "Refusal":
        fields = [{"field": "body", "message": message}]
        return cls(422, "validation_error", error or message, fields)


_NOT_JSON = Refusal(415, "unsupported_media_type", "Request bodies must be application/json.")
_TOO_LARGE = Refusal(413, "payload_too_large", "The request body exceeds 1 MiB.")


def _media_type(headers: dict[bytes, bytes]) -> bytes | None:
    """The declared media type, lower-cased without parameters; None when none is declared."""
    media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return media_type or None


_CROSS_SITE = Refusal(
    403, "cross_site_request", "Requests sent by another site's pages are refused."
)
# What a browser says of a request's initiator (Fetch Metadata). `same-site` is refused too: a
# sibling subdomain's page gets the SameSite=Lax cookie, and a body-less POST needs no type.
_OTHER_SITES = {b"same-site", b"cross-site"}


def _rejection(headers: dict[bytes, bytes], max_body_bytes: int) -> Refusal | None:
    """Why a request is refused before its body is read, if it is: a browser's request from
    another site's page (its cookie must not act); a declared type that is not JSON, even with an
    empty body (an HTML form's); or a body announced without any type."""
    if headers.get(b"sec-fetch-site") in _OTHER_SITES:
        return _CROSS_SITE
    length_header = headers.get(b"content-length")
    try:
        length = int(length_header) if length_header is not None else 0
    except ValueError:
        return Refusal(400, "bad_request", "Invalid Content-Length header.")
    if length > max_body_bytes:
        return _TOO_LARGE
    media_type = _media_type(headers)
    if media_type is None:
        return _NOT_JSON if length > 0 else None
    return None if media_type == b"application/json" else _NOT_JSON


# Nesting of JSON bodies, counted on the raw bytes before anything parses them: Python's decoder
# and every recursive walk after it would otherwise meet the interpreter's recursion limit (a
# 500, and a long traceback per request). The bodies of this API nest 2 levels.
MAX_BODY_DEPTH = 32
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Each opening counts +1 and each closing -1 (0xff as a signed byte), so that a running sum of
# the brackets in order is the depth at each point.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string ends at the next quote


def nesting_exceeds(body: bytes, limit: int = MAX_BODY_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `limit`, brackets inside
    strings aside: without recursion, in passes over bytes (at most about 40 ms for the worst
    1 MiB here, under 3 ms for bodies with few brackets, whatever else they hold)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few openings to nest that deep, inside strings or not
    # Escapes pair up from the left (two backslashes are one escaped backslash); every quote left
    # then opens or closes a string, and the rest of an unterminated string counts as inside it.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = _STRING.sub(b"", unescaped).split(b'"', 1)[0]
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    return max(accumulate(array("b", brackets.translate(_STEPS)))) > limit


def _body_rejection(
    headers: dict[bytes, bytes], body: bytes, max_body_bytes: int
) -> Refusal | None:
    """Why a request is refused once its body is read (a streamed body announces no length)."""
    if len(body) > max_body_bytes:
        return _TOO_LARGE
    if not body:
        return None
    if _media_type(headers) is None:
        return _NOT_JSON
    if b"\x00" in body:
        # Never in UTF-8 JSON (a NUL must be escaped); always in UTF-16 or UTF-32, which Python's
        # decoder would otherwise accept, and whose bytes the nesting scan cannot read.
        return Refusal.invalid_body("The request body could not be decoded.")
    if nesting_exceeds(body):
        return Refusal.invalid_body(
            f"The body nests arrays and objects deeper than {MAX_BODY_DEPTH} levels.",
            "The request is invalid; see `fields`.",
        )
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read ahead, as one message; then whatever the server says next (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class EdgeMiddleware:
    """Per HTTP request, from the outside in:

    - one access log line and one metrics sample, labelled by route template, not raw path;
    - the security headers on every response, errors included;
    - 403 for a state-changing request that a browser says another site's page sent
      (`Sec-Fetch-Site`); 415 for a declared type that is not JSON, with a body or without (so
      a form cannot act with the cookie), and for a body sent without any type; 413 past 1 MiB,
      whether announced by Content-Length or streamed;
    - the body read ahead of the app and checked before anything parses it: 422 when it nests
      deeper than `MAX_BODY_DEPTH`;
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
                checked = await self._checked_body(scope, receive)
                if checked is None:
                    status = 499  # the client closed the request: nobody to answer (as nginx logs)
                    return
                if isinstance(checked, Refusal):
                    extra = {} if checked.fields is None else {"fields": checked.fields}
                    await send_error(
                        edge_send, checked.status, checked.code, checked.message, **extra
                    )
                    return
                receive = _replay(checked, receive)
            await self.app(scope, receive, edge_send)
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

    async def _checked_body(self, scope: Scope, receive: Receive) -> bytes | Refusal | None:
        """The body, read and checked before the app runs; or why it is refused; or None if
        the client went away meanwhile."""
        headers = dict(scope["headers"])
        refusal = _rejection(headers, self.max_body_bytes)
        if refusal is not None:
            return refusal
        body = await self._read_body(receive)
        if body is None:
            return None
        return _body_rejection(headers, body, self.max_body_bytes) or body

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, read before the app runs so that it is checked first (reading stops
        once past the cap); None if the client went away meanwhile."""
        chunks: list[bytes] = []
        received = 0
        while received <= self.max_body_bytes:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            received += len(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

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
