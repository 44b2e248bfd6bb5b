"""What a model runtime is. Only workers hold runtimes; the API never runs a model."""

from dataclasses import dataclass
from typing import Any, Protocol


class RuntimeFailure(Exception):
    """The model could not produce an output; the message is stored as the prediction's error."""


@dataclass(frozen=True, slots=True)
class Health:
    available: bool
    detail: str | None = None


class Runtime(Protocol):
    """Loaded once per worker when a deployment first needs it, unloaded when none does.

    `batchable` runtimes get micro-batches (many inputs, one forward pass); the others get one
    input per call and are awaited concurrently (their time is spent waiting, not computing).
    """

    batchable: bool

    async def load(self) -> None: ...

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        """One output per input, in order; raise RuntimeFailure to fail the whole batch."""
        ...

    async def unload(self) -> None: ...

    async def health(self) -> Health: ...
