"""Drill: the Ollama server behind `gemma3:1b` breaks in each way a real one does (down, too slow,
500, garbage, a connection cut mid-answer). Each time a prediction on the gemma deployment ends
`failed` with a reason that says what happened (read back through the API, no traceback), the
worker logs no unexpected error, and it keeps serving a `mock` deployment meanwhile.

Everything runs in one process on 127.0.0.1 (the app with its in-process worker, the fake Ollama
in a thread) and stops by itself; the whole file takes a few seconds."""

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.api import Live, User, World, assert_error
from tests.support.fakes import RUNNER_DIED, FakeOllama, Fault, RunningServer
from tests.support.processes import free_port

# Mock predictions answer at once, so that "served meanwhile" is measured in milliseconds.
QUICK_MOCK = {"mock_delay_min": 0.02, "mock_delay_max": 0.05}
TIMEOUT = 0.5  # OLLAMA_TIMEOUT in the slow drill; the fake then takes SLOW seconds
SLOW = 2.0
GEMMA_PREDICTIONS = 3
MOCK_PREDICTIONS = 6
GENERIC = "the model failed unexpectedly"  # the worker's word for an unhandled exception


class Scene:
    def __init__(self, user: User, gemma: str, mock: str) -> None:
        self.user, self.gemma, self.mock = user, gemma, mock

    def predict_path(self, deployment_id: str) -> str:
        return f"/api/v1/deployments/{deployment_id}/predict"


async def build_scene(world: World) -> Scene:
    user = await world.user()
    org = await world.org(user)
    cluster = await world.cluster(org, cpu=4)
    gemma = await world.deployment(user, cluster, cpu=1, model="gemma3:1b")
    mock = await world.deployment(user, cluster, cpu=1, model="mock")
    assert gemma["status"] == mock["status"] == "running"
    return Scene(user, gemma["id"], mock["id"])


async def submit(scene: Scene, deployment_id: str) -> str | dict[str, Any]:
    """An async prediction: its id once accepted (202), or the 503 body of a deployment the
    workers already found cannot serve (`model_unavailable`), which must say why."""
    response = await scene.user.client.post(
        scene.predict_path(deployment_id), json={"input": "hello"}, headers={"Async-Mode": "true"}
    )
    if response.status_code == 503:
        return assert_error(response, 503, "model_unavailable")
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def finished(scene: Scene, prediction_id: str, seconds: float = 20) -> dict[str, Any]:
    """GET /api/v1/predictions/{id} until it is done (400 prediction_pending meanwhile)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await scene.user.client.get(f"/api/v1/predictions/{prediction_id}")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert_error(response, 400, "prediction_pending")
        assert time.monotonic() < deadline, f"prediction {prediction_id} never finished"
        await asyncio.sleep(0.05)


def assert_clear(reason: str, *fragments: str) -> None:
    """A reason a person can act on: specific, one short paragraph, no traceback."""
    assert reason and reason != GENERIC, reason
    assert "Traceback" not in reason and 'File "' not in reason, reason
    assert len(reason) < 1000, reason
    for fragment in fragments:
        assert fragment in reason, (fragment, reason)


async def side_by_side(scene: Scene) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Gemma predictions first, then mock ones, all asynchronous; each as it ends, or as refused
    (a 503 body): (gemma outcomes, mock outcomes)."""
    gemma = [await submit(scene, scene.gemma) for _ in range(GEMMA_PREDICTIONS)]
    mock = [await submit(scene, scene.mock) for _ in range(MOCK_PREDICTIONS)]

    async def outcome(submitted: str | dict[str, Any]) -> dict[str, Any]:
        return submitted if isinstance(submitted, dict) else await finished(scene, submitted)

    gemma_done = await asyncio.gather(*(outcome(s) for s in gemma))
    mock_done = await asyncio.gather(*(outcome(s) for s in mock))
    return list(gemma_done), list(mock_done)


def assert_failed_clearly(outcomes: list[dict[str, Any]], *fragments: str) -> None:
    for outcome in outcomes:
        if "code" in outcome:  # refused at once: the serving state already knew
            assert outcome["code"] == "model_unavailable"
            assert_clear(outcome["error"], *fragments)
        else:
            assert outcome["status"] == "failed", outcome
            assert outcome["output"] is None
            assert_clear(outcome["error"], *fragments)


def assert_served(outcomes: list[dict[str, Any]]) -> None:
    assert [o["status"] for o in outcomes] == ["completed"] * MOCK_PREDICTIONS, outcomes
    assert all(1000 <= int(o["output"]["result"]) <= 20000 for o in outcomes)


def at(outcome: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(outcome["completed_at"])


def assert_no_app_errors(caplog: pytest.LogCaptureFixture) -> None:
    """No log record of the app at ERROR or above: an unhandled exception in the worker (a model
    call, a serving check) logs one with its traceback."""
    errors = [r for r in caplog.records if r.name.startswith("app") and r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def check_serving(app: FastAPI) -> None:
    """One round of the in-process worker's serving check (it also runs every few seconds)."""
    await app.state.worker.visibility.check_serving()


FAULTS: dict[Fault, tuple[str, ...]] = {
    "status_500": ("failed the request (HTTP 500)", RUNNER_DIED, "server log"),
    "not_json": ("not Ollama's API", "JSONDecodeError", "OLLAMA_HOST"),
    "no_response": ("without a summary", "no `response` field", "OLLAMA_HOST"),
    "not_object": ("not Ollama's API", "TypeError", "OLLAMA_HOST"),
    "cut": ("closed the connection before its answer was complete", "RemoteProtocolError"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_broken_answer_fails_the_prediction_with_its_reason(
    live: Live, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeOllama(fault=fault)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host, **QUICK_MOCK) as (app, world):
            scene = await build_scene(world)
            await check_serving(app)  # the model list is fine: the deployment looks ready
            gemma, mock = await side_by_side(scene)
            sync = await scene.user.client.post(
                scene.predict_path(scene.gemma), json={"input": "hello"}
            )
            after = await scene.user.client.post(
                scene.predict_path(scene.mock), json={"input": "still there?"}
            )
    assert all("code" not in outcome for outcome in gemma), "nothing refused: the list was fine"
    assert_failed_clearly(gemma, fake.host, *FAULTS[fault])
    body = assert_error(sync, 502, "prediction_failed")
    assert_clear(body["error"], *FAULTS[fault])
    assert_served(mock)
    assert after.status_code == 200, after.text
    assert len(fake.requests) == GEMMA_PREDICTIONS + 1
    assert_no_app_errors(caplog)


async def test_a_slow_server_fails_after_ollama_timeout_while_mock_keeps_answering(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeOllama(delay=SLOW)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host, ollama_timeout=TIMEOUT, **QUICK_MOCK) as (_, world):
            scene = await build_scene(world)
            gemma, mock = await side_by_side(scene)
    assert_failed_clearly(gemma, f"did not answer within {TIMEOUT:g} s", "OLLAMA_TIMEOUT")
    assert all("code" not in outcome for outcome in gemma)
    assert_served(mock)
    # The mock predictions, sent after the gemma ones, were all answered while those hung.
    assert max(at(m) for m in mock) < min(at(g) for g in gemma)
    assert_no_app_errors(caplog)


async def test_a_server_that_is_down_fails_or_refuses_with_the_reason(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reason = (f"unreachable at {host}", "ollama serve", "ollama pull gemma3:1b")
    async with live(ollama_host=host, **QUICK_MOCK) as (app, world):
        scene = await build_scene(world)
        # Before the workers checked (or after: the serving state may already say so).
        gemma, mock = await side_by_side(scene)
        # Once they have, predictions are refused at once with the same reason.
        await check_serving(app)
        refused = await submit(scene, scene.gemma)
        deployment = (await scene.user.client.get(f"/api/v1/deployments/{scene.gemma}")).json()
        after = await scene.user.client.post(
            scene.predict_path(scene.mock), json={"input": "still there?"}
        )
    assert_failed_clearly(gemma, *reason)
    assert_served(mock)
    assert isinstance(refused, dict) and refused["code"] == "model_unavailable"
    assert_clear(refused["error"], *reason)
    assert deployment["serving"]["ready"] is False
    assert_clear(deployment["serving"]["reason"], *reason)
    assert after.status_code == 200, after.text
    assert_no_app_errors(caplog)


@pytest.mark.parametrize("fault", ["status_500", "not_json", "no_response", "cut"])
async def test_a_broken_model_list_marks_the_deployment_unready_and_keeps_the_catalog_up(
    live: Live, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    """The serving check and GET /models ask /api/tags: garbage there must read as a reason too."""
    fake = FakeOllama(fault=fault, fault_tags=True)
    with RunningServer(fake.app(), fake.port):
        async with live(ollama_host=fake.host, **QUICK_MOCK) as (app, world):
            scene = await build_scene(world)
            await check_serving(app)
            catalog = await scene.user.client.get("/api/v1/models")
            refused = await submit(scene, scene.gemma)
            deployment = (await scene.user.client.get(f"/api/v1/deployments/{scene.gemma}")).json()
            _, mock = await side_by_side(scene)
    assert catalog.status_code == 200, catalog.text
    gemma = {m["name"]: m for m in catalog.json()}["gemma3:1b"]
    assert gemma["available"] is False
    assert_clear(gemma["detail"], fake.host)
    assert "unreachable" not in gemma["detail"], "it answered: it is not unreachable"
    assert isinstance(refused, dict) and refused["code"] == "model_unavailable"
    assert deployment["serving"]["ready"] is False
    assert_clear(deployment["serving"]["reason"], fake.host)
    assert deployment["serving"]["reason"] in refused["error"]
    assert_served(mock)
    assert_no_app_errors(caplog)
