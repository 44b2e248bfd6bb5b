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
# What the client raises when a server answers with something else than Ollama's API: a body that
# is not JSON (json's ValueError), JSON of the wrong shape (pydantic's ValidationError, a
# ValueError), JSON that is not an object (TypeError; AttributeError while parsing an error body).
_MALFORMED = (ValueError, TypeError, AttributeError)
_CHECK_HOST = "check that OLLAMA_HOST points at an Ollama server (`curl $OLLAMA_HOST/api/tags`)"
ERROR_LIMIT = 300  # characters of a server's own error message kept in ours


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


def _short(text: str, limit: int = ERROR_LIMIT) -> str:
    """A server's error text on one line, at most `limit` characters (an HTML page can be long)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        except httpx.TimeoutException as exc:
            raise RuntimeFailure(
                f"Ollama at {self.host} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); raise OLLAMA_TIMEOUT for longer documents"
            ) from exc
        except (ollama.ResponseError, ConnectionError, httpx.HTTPError, *_MALFORMED) as exc:
            raise RuntimeFailure(self._describe(exc)) from exc
        if not isinstance(response.response, str):
            raise RuntimeFailure(
                f"Ollama at {self.host} answered without a summary (no `response` field in its "
                f"answer); {_CHECK_HOST}"
            )
        return clamp_summary(response.response)

    def _describe(self, exc: Exception) -> str:
        """One sentence for what went wrong talking to the server, and what to do about it."""
        if isinstance(exc, ollama.ResponseError):
            error = _short(str(exc.error))
            if exc.status_code >= 500:
                return (
                    f"Ollama at {self.host} failed the request (HTTP {exc.status_code}): {error}; "
                    "its server log says why"
                )
            return f"Ollama refused the request (HTTP {exc.status_code}): {error}"
        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.TimeoutException)):
            return self._unreachable(exc)
        if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
            # Connected, then the connection broke (or the answer was cut) before it was complete.
            return (
                f"Ollama at {self.host} closed the connection before its answer was complete "
                f"({type(exc).__name__}: {_short(str(exc))}); the server may have crashed or "
                "restarted: see its log"
            )
        if isinstance(exc, httpx.HTTPError):
            return f"the request to Ollama at {self.host} failed ({type(exc).__name__}: {exc})"
        return (
            f"Ollama at {self.host} answered with something that is not Ollama's API "
            f"({type(exc).__name__}); {_CHECK_HOST}"
        )

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
        except (ollama.ResponseError, ConnectionError, httpx.HTTPError, *_MALFORMED) as exc:
            return Health(False, self._describe(exc))
        names = {m.model for m in listed.models if m.model}
        if self.model in names or f"{self.model}:latest" in names:
            return Health(True)
        return Health(
            False,
            f"model {self.model!r} is not pulled on the Ollama server at {self.host}; "
            f"run `ollama pull {self.model}`",
        )
