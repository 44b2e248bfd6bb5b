"""A webhook receiver on 127.0.0.1, a real HTTP server in a thread (`RunningServer`), for the
callback tests. It records every request; on `/hook` it verifies the Standard Webhooks signature
when it knows the secret (401 when that fails) and answers the scripted status codes, then 204.
`/moved` redirects to `/target`, which must never be reached; `/slow` answers only once `release`
is set."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.support.fakes import RunningServer
from tests.support.processes import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: no secret to verify with


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=list)
    secret: str | None = None
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def app(self) -> Starlette:
        async def record(request: Request) -> Received:
            body = await request.body()
            headers = dict(request.headers)
            verified = None
            if self.secret is not None:
                try:
                    Webhook(self.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
            received = Received(request.url.path, headers, body, verified)
            self.received.append(received)
            return received

        async def hook(request: Request) -> Response:
            if (await record(request)).verified is False:
                return Response(status_code=401)
            return Response(status_code=self.answers.pop(0) if self.answers else 204)

        async def moved(request: Request) -> Response:
            await record(request)
            return RedirectResponse(self.url("/target"), 302)

        async def slow(request: Request) -> Response:
            await record(request)
            await anyio.to_thread.run_sync(self.release.wait)
            return Response(status_code=204)

        return Starlette(
            routes=[
                Route("/hook", hook, methods=["POST"]),
                Route("/target", hook, methods=["GET", "POST"]),
                Route("/moved", moved, methods=["POST"]),
                Route("/slow", slow, methods=["POST"]),
            ]
        )


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    with RunningServer(receiver.app(), receiver.port):
        try:
            yield receiver
        finally:
            receiver.release.set()  # a request still held by /slow must not hold the server
