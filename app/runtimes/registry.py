"""Model name -> runtime. Adding a model is one runtime module plus one entry here."""

from collections.abc import Callable

from app.core.config import Settings
from app.runtimes.base import Runtime
from app.runtimes.distilbert import DistilBertRuntime
from app.runtimes.mock import MockRuntime
from app.runtimes.ollama import OllamaRuntime

RuntimeFactory = Callable[[Settings], Runtime]

FACTORIES: dict[str, RuntimeFactory] = {
    "mock": lambda s: MockRuntime(s.mock_delay_min, s.mock_delay_max),
    "distilbert-sst2": lambda s: DistilBertRuntime(s.distilbert_model),
    "gemma3:1b": lambda s: OllamaRuntime(s.ollama_host, s.ollama_model, s.ollama_timeout),
}


def build_runtime(model: str, settings: Settings) -> Runtime:
    return FACTORIES[model](settings)
