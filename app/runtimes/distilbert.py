"""DistilBERT sentiment (SST-2) through transformers, off the event loop, in micro-batches.

The same code path loads the real weights (a hub id or a local directory in DISTILBERT_MODEL) and
the tiny offline model the tests build. transformers and torch are the optional `ml` extra, so
they are imported only when a worker first needs this runtime.
"""

from pathlib import Path
from typing import Any

import anyio.to_thread

from app.runtimes.base import Health, RuntimeFailure


class DistilBertRuntime:
    batchable = True

    def __init__(self, model: str) -> None:
        self.model_name = model
        self._tokenizer: Any = None
        self._model: Any = None
        self._max_length = 512
        self._positive = 1
        self.forward_calls = 0  # one per micro-batch: tests prove batching with it

    async def load(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._load)
        except Exception as exc:
            raise RuntimeFailure(f"could not load {self.model_name!r}: {exc}") from exc

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        local = Path(self.model_name).is_dir()
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_name, local_files_only=local)
        self._model = AutoModelForSequenceClassification.from_pretrained(
            self.model_name, local_files_only=local
        )
        self._model.eval()
        config = self._model.config
        # A tokenizer saved without model_max_length reports a huge one and would not truncate:
        # bound it by what the model can embed.
        self._max_length = min(
            int(getattr(self._tokenizer, "model_max_length", 512) or 512),
            int(getattr(config, "max_position_embeddings", 512)),
        )
        labels = {str(v).upper(): int(k) for k, v in (config.id2label or {}).items()}
        self._positive = labels.get("POSITIVE", 1)

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        if self._model is None:
            raise RuntimeFailure("model not loaded")
        try:
            return await anyio.to_thread.run_sync(self._predict, inputs)
        except Exception as exc:
            raise RuntimeFailure(f"inference failed: {exc}") from exc

    def _predict(self, inputs: list[str]) -> list[dict[str, Any]]:
        import torch

        encoded = self._tokenizer(
            inputs,
            truncation=True,
            max_length=self._max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self._model(**encoded).logits
        self.forward_calls += 1
        probabilities = torch.softmax(logits, dim=-1).tolist()
        negative = 1 - self._positive
        outputs = []
        for row in probabilities:
            positive_score, negative_score = float(row[self._positive]), float(row[negative])
            label = "POSITIVE" if positive_score >= negative_score else "NEGATIVE"
            outputs.append(
                {
                    "label": label,
                    "score": max(positive_score, negative_score),
                    "positive_score": positive_score,
                    "negative_score": negative_score,
                }
            )
        return outputs

    async def unload(self) -> None:
        self._model = self._tokenizer = None

    async def health(self) -> Health:
        if self._model is not None:
            return Health(True)  # loaded: it serves
        return await anyio.to_thread.run_sync(self._health)

    def _health(self) -> Health:
        try:
            from transformers import AutoConfig
        except ImportError:
            return Health(False, "transformers is not installed (install the `ml` extra)")
        try:
            AutoConfig.from_pretrained(self.model_name, local_files_only=True)
        except Exception:
            return Health(
                False,
                f"weights for {self.model_name!r} are not available locally; "
                "set DISTILBERT_MODEL to a model directory",
            )
        return Health(True)
