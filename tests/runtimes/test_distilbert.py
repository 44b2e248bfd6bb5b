"""DistilBERT through the real loading code, on a tiny model built offline."""

import asyncio
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from app.runtimes.distilbert import DistilBertRuntime
from tests.runtimes.conftest import deploy

LONG_INPUT = " ".join(["the movie was good"] * 1250)  # 5,000 words


def check_output(output: dict[str, Any]) -> None:
    assert set(output) == {"label", "score", "positive_score", "negative_score"}
    assert output["label"] in ("POSITIVE", "NEGATIVE")
    for key in ("score", "positive_score", "negative_score"):
        assert 0.0 <= output[key] <= 1.0
    assert abs(output["positive_score"] + output["negative_score"] - 1) < 1e-5
    assert output["score"] == max(output["positive_score"], output["negative_score"])


async def test_long_input_is_truncated_to_the_model_limit(tiny_distilbert: Path) -> None:
    tokens = AutoTokenizer.from_pretrained(tiny_distilbert)(LONG_INPUT)["input_ids"]
    assert len(tokens) > 512  # without truncation the position embeddings would overflow
    runtime = DistilBertRuntime(str(tiny_distilbert))
    await runtime.load()
    outputs = await runtime.predict_batch(["the plot was wonderful", LONG_INPUT])
    assert len(outputs) == 2
    for output in outputs:
        check_output(output)


async def test_missing_weights_are_reported_not_raised(tmp_path: Path) -> None:
    runtime = DistilBertRuntime(str(tmp_path / "nothing-here"))
    health = await runtime.health()
    assert health.available is False
    assert health.detail and "DISTILBERT_MODEL" in health.detail


async def test_predictions_over_http_and_micro_batching(live: Any, tiny_distilbert: Path) -> None:
    async with live(distilbert_model=str(tiny_distilbert), batch_max_wait_ms=50) as (app, world):
        user, deployment = await deploy(world, "distilbert-sst2")
        url = f"/api/v1/deployments/{deployment['id']}/predict"
        single = await user.client.post(url, json={"input": LONG_INPUT})
        assert single.status_code == 200, single.text
        check_output(single.json()["output"])

        runtime = app.state.worker.pool.runtimes["distilbert-sst2"]
        before = runtime.forward_calls
        responses = await asyncio.gather(
            *(user.client.post(url, json={"input": f"the film was good {i}"}) for i in range(24))
        )
        assert all(r.status_code == 200 for r in responses)
        for response in responses:
            check_output(response.json()["output"])
        forward_calls = runtime.forward_calls - before
        assert forward_calls < len(responses), "concurrent requests were not batched"

        models = {m["name"]: m for m in (await user.client.get("/api/v1/models")).json()}
        assert models["distilbert-sst2"]["available"] is True
