"""Fakes at the external boundaries only: a tiny DistilBERT built offline (loaded by the real
code path) and an Ollama server that speaks Ollama's HTTP API on 127.0.0.1 (or, with a `fault`,
fails the way a broken one does)."""

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.processes import free_port

WORDS = ["the", "a", "movie", "film", "was", "is", "great", "good", "bad", "awful"]
WORDS += ["terrible", "wonderful", "plot", "actor", "not", "very"]


def build_tiny_distilbert(directory: Path) -> Path:
    """Config, vocabulary and random weights of a DistilBERT small enough to build in a second."""
    import torch
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        DistilBertTokenizer,
    )

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    # The vocabulary path goes positionally (a `vocab_file=` keyword is ignored by transformers
    # 5), and model_max_length must be set or long inputs are not truncated.
    tokenizer = DistilBertTokenizer(str(vocab), model_max_length=512)
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=len(WORDS) + 5,
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=512,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    DistilBertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# How a broken Ollama answers /api/generate and /api/chat (and /api/tags with `fault_tags`):
# "status_500": 500 with Ollama's JSON error body, as when its model runner dies;
# "not_json": 200 with an HTML page (a proxy or another server on the port);
# "no_response": 200 with JSON that lacks the `response` (or `message`) field, or `models`
# itself when the listing is the broken one: it is then empty;
# "not_object": 200 with JSON that is a list, not an object;
# "cut": 200 headers announcing the full body, half of it, then the connection is closed.
Fault = Literal["status_500", "not_json", "no_response", "not_object", "cut"]
RUNNER_DIED = "llama runner process has terminated: signal: killed"


class _CutResponse(Response):
    """Announces the whole body, sends the first half, then ends without the rest: uvicorn
    closes the connection with the response incomplete (it logs that, as it should)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})


def _broken(fault: Fault, body: dict[str, Any]) -> Response:
    if fault == "status_500":
        return JSONResponse({"error": RUNNER_DIED}, 500)
    if fault == "not_json":
        return Response("<html><body>It works!</body></html>", 200, media_type="text/html")
    if fault == "no_response":
        missing = ("response", "message", "models")
        return JSONResponse({k: v for k, v in body.items() if k not in missing})
    if fault == "not_object":
        return JSONResponse([body])
    return _CutResponse(json.dumps(body), 200, media_type="application/json")


@dataclass
class FakeOllama:
    """Answers /api/tags, /api/generate and /api/chat like an Ollama server holding `models`;
    with a `fault`, /api/generate and /api/chat (and /api/tags too with `fault_tags`) answer as
    a broken server does. `delay` (seconds) is spent before every generate or chat answer;
    `hung_up` counts the requests whose client closed the connection before it came."""

    reply: str = "A short summary."
    delay: float = 0.0
    models: list[str] = field(default_factory=lambda: ["gemma3:1b"])
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    fault: Fault | None = None
    fault_tags: bool = False
    hung_up: int = 0

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _wait(self, request: Request) -> bool:
        """Spend `delay`, watching the connection as a real server does; False if the client
        went away meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delay
        while (remaining := deadline - loop.time()) > 0:
            if await request.is_disconnected():
                return False
            await asyncio.sleep(min(remaining, 0.05))
        return True

    def app(self) -> Starlette:
        async def tags(_: Request) -> Response:
            listing = {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2026-11-01T00:00:00Z",
                        "size": 815319791,
                        "digest": "0" * 64,
                        "details": {"family": "gemma3", "parameter_size": "1B"},
                    }
                    for name in self.models
                ]
            }
            if self.fault is not None and self.fault_tags:
                return _broken(self.fault, listing)
            return JSONResponse(listing)

        async def answer(request: Request, chat: bool) -> Response:
            body = await request.json()
            self.requests.append(body)
            if body.get("model") not in self.models:
                return JSONResponse({"error": f"model '{body.get('model')}' not found"}, 404)
            if not await self._wait(request):
                self.hung_up += 1
                return Response(status_code=499)  # nobody reads it
            done = {"model": body["model"], "created_at": "2026-11-29T00:00:00Z", "done": True}
            if chat:
                answered = {**done, "message": {"role": "assistant", "content": self.reply}}
            else:
                answered = {**done, "response": self.reply, "done_reason": "stop"}
            if self.fault is not None:
                return _broken(self.fault, answered)
            return JSONResponse(answered)

        async def generate(request: Request) -> Response:
            return await answer(request, chat=False)

        async def chat(request: Request) -> Response:
            return await answer(request, chat=True)

        return Starlette(
            routes=[
                Route("/api/tags", tags),
                Route("/api/generate", generate, methods=["POST"]),
                Route("/api/chat", chat, methods=["POST"]),
            ]
        )


class RunningServer:
    """A uvicorn server in a background thread, for fakes that must be real HTTP servers."""

    def __init__(self, app: Starlette, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "RunningServer":
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
