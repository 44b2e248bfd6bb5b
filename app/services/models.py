"""The model catalog with honest availability, asked of each runtime's health check (cheap
checks only: a config file on disk, Ollama's model list; no model is loaded here)."""

import asyncio
from dataclasses import dataclass

from app.core.config import Settings
from app.runtimes.catalog import MODELS, build_runtime


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str
    runtime: str
    task: str
    description: str
    available: bool
    detail: str | None


async def catalog(settings: Settings) -> list[ModelStatus]:
    specs = list(MODELS.values())
    runtimes = [build_runtime(s.name, settings) for s in specs]
    try:
        healths = await asyncio.gather(*(runtime.health() for runtime in runtimes))
    finally:
        for runtime in runtimes:
            await runtime.unload()  # nothing was loaded; this closes their clients
    return [
        ModelStatus(s.name, s.runtime, s.task, s.description, h.available, h.detail)
        for s, h in zip(specs, healths, strict=True)
    ]
