"""The reference mock model: a random integer after a random, non-blocking delay."""

import asyncio
import random
from typing import Any

from app.runtimes.base import Health


class MockRuntime:
    batchable = False

    def __init__(self, delay_min: float, delay_max: float) -> None:
        self.delay_min, self.delay_max = delay_min, delay_max
        self.calls = 0  # how many inputs it has answered: tests prove idempotency with it
        self.answering = 0  # inputs being answered now: a cancelled prediction's wait stops

    async def load(self) -> None:
        return None

    async def predict_batch(self, inputs: list[str]) -> list[dict[str, Any]]:
        outputs = []
        for text in inputs:
            self.calls += 1
            self.answering += 1
            try:
                await asyncio.sleep(random.uniform(self.delay_min, self.delay_max))  # noqa: S311
            finally:
                self.answering -= 1
            outputs.append({"input": text, "result": str(random.randint(1000, 20000))})  # noqa: S311
        return outputs

    async def unload(self) -> None:
        return None

    async def health(self) -> Health:
        return Health(True)
