"""The models a deployment may name. Creation and scheduling only check the name; whether a
model can actually serve is a runtime question (see `available` in GET /api/v1/models)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    runtime: str
    task: str
    description: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mock", "mock", "echo", "Reference mock model: a random integer after a delay."),
        ModelSpec(
            "distilbert-sst2",
            "transformers",
            "text-classification",
            "DistilBERT fine-tuned on SST-2: POSITIVE/NEGATIVE sentiment.",
        ),
        ModelSpec(
            "gemma3:1b", "ollama", "summarization", "gemma3 1B through Ollama: summarizes text."
        ),
    )
}


def is_known_model(name: str) -> bool:
    return name in MODELS
