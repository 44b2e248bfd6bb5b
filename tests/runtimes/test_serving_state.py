"""A running deployment says whether its model can serve, as the workers found it: in its body,
its events and /metrics; predictions on one that cannot fail at once with the same actionable
reason, and the worker says it once in its log, not on every check."""

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.runtimes.conftest import deploy
from tests.support.api import User, assert_error
from tests.support.fakes import FakeOllama, RunningServer
from tests.support.processes import free_port


async def check(app: FastAPI) -> None:
    """One round of the in-process worker's serving check (it also runs every few seconds)."""
    await app.state.worker.visibility.check_serving()


async def serving(user: User, deployment: dict[str, Any]) -> dict[str, Any]:
    body = (await user.client.get(f"/api/v1/deployments/{deployment['id']}")).json()
    state: dict[str, Any] = body["serving"]
    return state


async def test_missing_weights_make_a_deployment_unready_and_predictions_fail_at_once(
    live: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-such-model")
    async with live(distilbert_model=missing) as (app, world):
        user, deployment = await deploy(world, "distilbert-sst2")
        assert (await serving(user, deployment))["ready"] is None  # nobody looked yet
        with caplog.at_level(logging.WARNING, logger="app.workers.visibility"):
            await check(app)
            await check(app)
        state = await serving(user, deployment)
        url = f"/api/v1/deployments/{deployment['id']}"
        events = (await user.client.get(f"{url}/events")).json()
        sync = await user.client.post(f"{url}/predict", json={"input": "good"})
        queued = await user.client.post(
            f"{url}/predict", json={"input": "good"}, headers={"Async-Mode": "true"}
        )
        metrics = (await user.client.get("/metrics")).text
        listed = (await user.client.get(f"{url}/predictions")).json()
    assert state["ready"] is False
    assert "set DISTILBERT_MODEL to a model directory" in state["reason"]
    assert state["since"] is not None
    serving_events = [e for e in events if e["type"] == "serving"]
    assert serving_events == [
        {
            "at": state["since"],
            "type": "serving",
            "detail": {"ready": False, "reason": state["reason"]},
        }
    ], "one event for the change, none for the second identical check"
    for response in (sync, queued):
        body = assert_error(response, 503, "model_unavailable")
        assert state["reason"] in body["error"]
    assert listed == [], "nothing was queued to fail later"
    assert 'mlops_deployments_not_serving{model="distilbert-sst2"} 1.0' in metrics
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and state["reason"] in warnings[0].getMessage()


async def test_a_loaded_model_serves_and_says_so(live: Any, tiny_distilbert: Path) -> None:
    async with live(distilbert_model=str(tiny_distilbert)) as (app, world):
        user, deployment = await deploy(world, "distilbert-sst2")
        await check(app)
        state = await serving(user, deployment)
        response = await user.client.post(
            f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "good film"}
        )
    assert state["ready"] is True and state["reason"] is None
    assert response.status_code == 200, response.text


async def test_ollama_unreachable_then_back_flips_the_state_with_an_event_each_way(
    live: Any,
) -> None:
    fake = FakeOllama()
    async with live(ollama_host=fake.host) as (app, world):
        user, deployment = await deploy(world, "gemma3:1b")
        await check(app)  # nothing listens on the fake's port yet
        down = await serving(user, deployment)
        with RunningServer(fake.app(), fake.port):
            await check(app)
            up = await serving(user, deployment)
        events = (await user.client.get(f"/api/v1/deployments/{deployment['id']}/events")).json()
    assert down["ready"] is False
    assert f"unreachable at {fake.host}" in down["reason"]
    assert "ollama pull gemma3:1b" in down["reason"]
    assert up == {"ready": True, "reason": None, "since": up["since"]}
    assert [e["detail"]["ready"] for e in events if e["type"] == "serving"] == [False, True]


async def test_a_deployment_that_is_not_running_has_no_serving_state(live: Any) -> None:
    async with live(ollama_host=f"http://127.0.0.1:{free_port()}") as (app, world):
        user, deployment = await deploy(world, "gemma3:1b")
        await check(app)
        done = await user.client.post(f"/api/v1/deployments/{deployment['id']}/complete")
    assert done.json()["serving"] is None
