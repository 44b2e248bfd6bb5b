"""gemma3 summarization through an Ollama server's native API (the official async client)."""

import re
from typing import Any

import httpx
import ollama

from app.runtimes.base import Health, RuntimeFailure

SUMMARY_LIMIT = 1500
HEALTH_TIMEOUT = 3.0
# About four characters a token: enough room for a full summary, never a runaway generation.
MAX_TOKENS = 400
PROMPT = (
    "Summarize the following document in a few sentences. Reply with the summary only.\n\n"
    "Document:\n{document}"
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")


def clamp_summary(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """At most `limit` characters, cut after the last complete sentence that fits."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends:
        return head[: ends[-1]].strip()
    # No sentence ends inside the limit: cut at a word and close it.
    words = head[: limit - 1].rsplit(None, 1)[0] if " " in head else head[: limit - 1]
    return words.rstrip(",;: ") + "…"


class OllamaRuntime:
    batchable = False

    def __init__(self, host: str, model: str, timeout: float) -> None:
        self.host, self.model, self.timeout = host, model, timeout
        self._client = ollama.AsyncClient(host=host, timeout=timeout)

    async def load(self) -> None:
        return None  # the server holds the weights; nothing to load in the worker

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        return [{"summary": await self._summarize(text)} for text in inputs]

    async def _summarize(self, document: str) -> str:
        try:
            response = await self._client.generate(
                model=self.model,
                prompt=PROMPT.format(document=document),
                options={"num_predict": MAX_TOKENS},
            )
        except ollama.ResponseError as exc:
            raise RuntimeFailure(f"Ollama refused the request: {exc.error}") from exc
        except httpx.TimeoutException as exc:
            raise RuntimeFailure(
                f"Ollama at {self.host} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); raise OLLAMA_TIMEOUT for longer documents"
            ) from exc
        except (ConnectionError, httpx.HTTPError) as exc:
            raise RuntimeFailure(self._unreachable(exc)) from exc
        return clamp_summary(response.response or "")

    def _unreachable(self, exc: Exception) -> str:
        return (
            f"Ollama server unreachable at {self.host} ({type(exc).__name__}); start it "
            f"(`ollama serve`) and run `ollama pull {self.model}`, or set OLLAMA_HOST"
        )

    async def unload(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]

    async def health(self) -> Health:
        # A short timeout of its own: a host that drops packets must not stall GET /models.
        try:
            async with ollama.AsyncClient(host=self.host, timeout=HEALTH_TIMEOUT) as client:
                listed = await client.list()
        except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
            return Health(False, self._unreachable(exc))
        names = {m.model for m in listed.models if m.model}
        if self.model in names or f"{self.model}:latest" in names:
            return Health(True)
        return Health(
            False,
            f"model {self.model!r} is not pulled on the Ollama server at {self.host}; "
            f"run `ollama pull {self.model}`",
        )
