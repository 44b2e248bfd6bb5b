"""The models a deployment may name, each declared once: its catalogue entry and how to build its
runtime. Adding a model is one runtime module plus one entry here.

Creation and scheduling only check the name; whether a model can actually serve is a runtime
question (its health, shown as `available` in GET /api/v1/models).
"""

from collections.abc import Callable
from dataclasses import dataclass

from app.core.config import Settings
from app.runtimes.base import Runtime
from app.runtimes.distilbert import DistilBertRuntime
from app.runtimes.mock import MockRuntime
from app.runtimes.ollama import OllamaRuntime


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    runtime: str
    task: str
    description: str
    build: Callable[[Settings], Runtime]


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "mock",
            "mock",
            "echo",
            "Reference mock model: a random integer after a delay.",
            lambda s: MockRuntime(s.mock_delay_min, s.mock_delay_max),
        ),
        ModelSpec(
            "distilbert-sst2",
            "transformers",
            "text-classification",
            "DistilBERT fine-tuned on SST-2: POSITIVE/NEGATIVE sentiment.",
            lambda s: DistilBertRuntime(s.distilbert_model),
        ),
        ModelSpec(
            "gemma3:1b",
            "ollama",
            "summarization",
            "gemma3 1B through Ollama: summarizes text.",
            lambda s: OllamaRuntime(s.ollama_host, s.ollama_model, s.ollama_timeout),
        ),
    )
}


def is_known_model(name: str) -> bool:
    return name in MODELS


def build_runtime(model: str, settings: Settings) -> Runtime:
    return MODELS[model].build(settings)
