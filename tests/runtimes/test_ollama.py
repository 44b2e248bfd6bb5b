"""gemma3 through Ollama's real HTTP API, served by a fake Ollama on 127.0.0.1."""

import re
from typing import Any

import pytest

from app.runtimes.base import RuntimeFailure
from app.runtimes.ollama import SUMMARY_LIMIT, OllamaRuntime, clamp_summary
from tests.runtimes.conftest import deploy
from tests.support.fakes import FakeOllama, RunningServer
from tests.support.processes import free_port
from tests.support.workers import eventually

SENTENCE = "The committee reviewed the quarterly results and agreed on next steps. "
LONG_REPLY = (SENTENCE * 80)[:5000]


def test_clamp_keeps_short_text_and_cuts_long_text_at_a_sentence() -> None:
    assert clamp_summary("  Short one.  ") == "Short one."
    clamped = clamp_summary(LONG_REPLY)
    assert len(clamped) <= SUMMARY_LIMIT
    assert clamped.endswith(".")
    assert LONG_REPLY.startswith(clamped)


def test_clamp_without_any_sentence_end_cuts_at_a_word() -> None:
    clamped = clamp_summary("word " * 1000)
    assert len(clamped) <= SUMMARY_LIMIT
    assert clamped.endswith("…")


async def test_summary_of_a_long_reply_is_capped_at_a_sentence_boundary(live: Any) -> None:
    fake = FakeOllama(reply=LONG_REPLY)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host) as (_, world):
            user, deployment = await deploy(world, "gemma3:1b")
            response = await user.client.post(
                f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "x" * 8000}
            )
            models = {m["name"]: m for m in (await user.client.get("/api/v1/models")).json()}
    assert response.status_code == 200, response.text
    summary = response.json()["output"]["summary"]
    assert 0 < len(summary) <= 1500
    assert re.search(r"[.!?]$", summary)
    assert models["gemma3:1b"]["available"] is True
    request = fake.requests[-1]
    assert request["model"] == "gemma3:1b"
    assert request["options"]["num_predict"] > 0
    assert "x" * 100 in request["prompt"]


async def test_unreachable_server_is_unavailable_and_predictions_fail(live: Any) -> None:
    async with live(ollama_host=f"http://127.0.0.1:{free_port()}") as (_, world):
        user, deployment = await deploy(world, "gemma3:1b")
        models = {m["name"]: m for m in (await user.client.get("/api/v1/models")).json()}
        response = await user.client.post(
            f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "hello"}
        )
    assert models["gemma3:1b"]["available"] is False
    assert "unreachable" in models["gemma3:1b"]["detail"]
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "prediction_failed"
    assert body["prediction_id"]


async def test_missing_model_is_unavailable_and_fails_with_a_reason(live: Any) -> None:
    fake = FakeOllama(models=["llama3:8b"])
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host) as (_, world):
            user, deployment = await deploy(world, "gemma3:1b")
            models = {m["name"]: m for m in (await user.client.get("/api/v1/models")).json()}
            response = await user.client.post(
                f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "hello"}
            )
            stored = await user.client.get(
                f"/api/v1/predictions/{response.json()['prediction_id']}"
            )
    assert models["gemma3:1b"]["available"] is False
    assert "not pulled" in models["gemma3:1b"]["detail"]
    assert response.status_code == 502
    assert stored.json()["status"] == "failed"
    assert "not found" in stored.json()["error"]


async def test_slow_server_fails_after_the_timeout(live: Any) -> None:
    fake = FakeOllama(delay=5)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host, ollama_timeout=0.5) as (_, world):
            user, deployment = await deploy(world, "gemma3:1b")
            response = await user.client.post(
                f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "hello"}
            )
    assert response.status_code == 502
    assert "did not answer" in response.json()["error"]


async def test_cancelling_a_prediction_closes_its_request_to_ollama(live: Any) -> None:
    fake = FakeOllama(delay=60)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host) as (_, world):
            user, deployment = await deploy(world, "gemma3:1b")
            accepted = await user.client.post(
                f"/api/v1/deployments/{deployment['id']}/predict",
                json={"input": "a long document"},
                headers={"Async-Mode": "true"},
            )
            await eventually(lambda: len(fake.requests) == 1, what="the request reaching Ollama")
            cancelled = await user.client.post(
                f"/api/v1/predictions/{accepted.json()['prediction_id']}/cancel"
            )
            await eventually(lambda: fake.hung_up == 1, what="the request being closed")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def test_runtime_errors_are_runtime_failures_that_say_what_to_do() -> None:
    runtime = OllamaRuntime(f"http://127.0.0.1:{free_port()}", "gemma3:1b", timeout=1)
    with pytest.raises(RuntimeFailure, match=r"unreachable at .*ollama pull gemma3:1b"):
        await runtime.predict_batch(["hello"])
