"""Fakes at the external boundaries only: a tiny DistilBERT built offline (loaded by the real
code path) and an Ollama server that speaks Ollama's HTTP API on 127.0.0.1."""

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


@dataclass
class FakeOllama:
    """Answers /api/tags, /api/generate and /api/chat like an Ollama server holding `models`."""

    reply: str = "A short summary."
    delay: float = 0.0
    models: list[str] = field(default_factory=lambda: ["gemma3:1b"])
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> Starlette:
        async def tags(_: Request) -> JSONResponse:
            return JSONResponse(
                {
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
            )

        async def answer(request: Request, chat: bool) -> JSONResponse:
            body = await request.json()
            self.requests.append(body)
            if body.get("model") not in self.models:
                return JSONResponse({"error": f"model '{body.get('model')}' not found"}, 404)
            await asyncio.sleep(self.delay)
            done = {"model": body["model"], "created_at": "2026-11-29T00:00:00Z", "done": True}
            if chat:
                return JSONResponse(
                    {**done, "message": {"role": "assistant", "content": self.reply}}
                )
            return JSONResponse({**done, "response": self.reply, "done_reason": "stop"})

        async def generate(request: Request) -> JSONResponse:
            return await answer(request, chat=False)

        async def chat(request: Request) -> JSONResponse:
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
