"""Predictions over HTTP with the in-process worker: sync, async, polling, idempotency, errors."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.models.prediction import Prediction, PredictionStatus
from app.runtimes.mock import MockRuntime
from app.services import prediction_states
from app.services import predictions as predictions_service
from tests.support.api import AppFactory, ClientFactory, Org, User, World, assert_error

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def live_app(app: FastAPI, app_factory: AppFactory) -> AsyncIterator[FastAPI]:
    """The app with its in-process worker running (tables were emptied by `app`)."""
    live = app_factory(worker_in_process=True, mock_delay_min=0.05, mock_delay_max=0.15)
    async with LifespanManager(live):
        yield live


@pytest.fixture
def live_world(live_app: FastAPI, client_factory: ClientFactory) -> World:
    return World(lambda: client_factory(live_app))


async def running_deployment(world: World, **kw: Any) -> tuple[Org, User, dict[str, Any]]:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    cluster = await world.cluster(org, cpu=2)
    deployment = await world.deployment(dev, cluster, cpu=1, **kw)
    assert deployment["status"] == "running"
    return org, dev, deployment


def predict_url(deployment: dict[str, Any]) -> str:
    return f"/api/v1/deployments/{deployment['id']}/predict"


async def poll(client: httpx.AsyncClient, prediction_id: str, within: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get(f"/api/v1/predictions/{prediction_id}")
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert_error(response, 400, "prediction_pending")
        assert asyncio.get_running_loop().time() < deadline, "prediction never finished"
        await asyncio.sleep(0.05)


def mock_calls(app: FastAPI) -> int:
    runtime = app.state.worker.pool.runtimes.get("mock")
    return runtime.calls if isinstance(runtime, MockRuntime) else 0


async def test_sync_prediction_returns_the_mock_output(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    response = await dev.client.post(predict_url(deployment), json={"input": "hello"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "prediction_id", "deployment_id", "model", "status", "input", "output", "error",
        "created_at", "completed_at",
    }  # fmt: skip
    assert body["status"] == "completed"
    assert body["model"] == "mock"
    assert body["output"]["input"] == "hello"
    assert 1000 <= int(body["output"]["result"]) <= 20000
    assert body["error"] is None and body["completed_at"]


@pytest.mark.parametrize(
    "headers", [{"Async-Mode": "true"}, {"Async-Mode": "TRUE"}, {"Prefer": "respond-async"}]
)
async def test_async_prediction_is_accepted_then_polled(
    live_world: World, headers: dict[str, str]
) -> None:
    _, dev, deployment = await running_deployment(live_world)
    response = await dev.client.post(predict_url(deployment), json={"input": "hi"}, headers=headers)
    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "Request received. Processing asynchronously."
    assert response.headers["Location"] == f"/api/v1/predictions/{body['prediction_id']}"
    pending = await dev.client.get(response.headers["Location"])
    assert pending.status_code == 400
    assert pending.json() == {
        "error": "Prediction is still being processed.",
        "code": "prediction_pending",
    }
    done = await poll(dev.client, body["prediction_id"])
    assert done["prediction_id"] == body["prediction_id"]
    assert done["output"]["input"] == "hi"
    assert done["output"]["result"].isdigit()


async def test_async_mode_false_means_synchronous(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    response = await dev.client.post(
        predict_url(deployment), json={"input": "x"}, headers={"Async-Mode": "false"}
    )
    assert response.status_code == 200


async def test_unknown_malformed_and_foreign_predictions_are_404(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    accepted = await dev.client.post(
        predict_url(deployment), json={"input": "x"}, headers={"Async-Mode": "true"}
    )
    stranger = await live_world.user()
    expected = {"error": "Prediction ID not found.", "code": "prediction_not_found"}
    for client, prediction_id in (
        (dev.client, "00000000-0000-0000-0000-000000000000"),
        (dev.client, "not-a-uuid"),
        (stranger.client, accepted.json()["prediction_id"]),
    ):
        response = await client.get(f"/api/v1/predictions/{prediction_id}")
        assert response.status_code == 404
        assert response.json() == expected


async def test_viewers_cannot_predict(live_world: World) -> None:
    org, _, deployment = await running_deployment(live_world)
    viewer = await live_world.user()
    await live_world.add_member(org, viewer, "viewer")
    response = await viewer.client.post(predict_url(deployment), json={"input": "x"})
    assert_error(response, 403, "forbidden")


async def test_a_deployment_that_is_not_running_cannot_predict(live_world: World) -> None:
    org, dev, _ = await running_deployment(live_world)
    cluster = await live_world.cluster(org, cpu=1)
    await live_world.deployment(dev, cluster, cpu=1)
    waiting = await live_world.deployment(dev, cluster, cpu=1)
    for headers in ({}, {"Async-Mode": "true"}):
        response = await dev.client.post(predict_url(waiting), json={"input": "x"}, headers=headers)
        assert_error(response, 409, "deployment_not_running")


@pytest.mark.parametrize("body", [{"input": ""}, {"input": "x" * 100_001}, {"input": 5}, {}])
async def test_input_limits(live_world: World, body: dict[str, Any]) -> None:
    _, dev, deployment = await running_deployment(live_world)
    response = await dev.client.post(predict_url(deployment), json=body)
    assert assert_error(response, 422, "validation_error")["fields"][0]["field"] == "input"


async def test_idempotent_replay_returns_the_same_prediction_and_runs_the_model_once(
    live_app: FastAPI, live_world: World
) -> None:
    _, dev, deployment = await running_deployment(live_world)
    headers = {"Idempotency-Key": "order-42"}
    first = await dev.client.post(predict_url(deployment), json={"input": "same"}, headers=headers)
    assert first.status_code == 200
    calls = mock_calls(live_app)
    for extra in ({}, {"Async-Mode": "true"}):
        again = await dev.client.post(
            predict_url(deployment), json={"input": "same"}, headers={**headers, **extra}
        )
        assert again.status_code == 200
        assert again.json() == first.json()
    assert mock_calls(live_app) == calls == 1
    other = await dev.client.post(predict_url(deployment), json={"input": "other"}, headers=headers)
    assert_error(other, 409, "idempotency_key_reused")


async def test_replay_while_still_running_gives_the_202_body(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    headers = {"Idempotency-Key": "k", "Async-Mode": "true"}
    first = await dev.client.post(predict_url(deployment), json={"input": "a"}, headers=headers)
    again = await dev.client.post(predict_url(deployment), json={"input": "a"}, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()


async def test_idempotency_keys_are_scoped_to_caller_and_deployment(live_world: World) -> None:
    org, dev, deployment = await running_deployment(live_world)
    other_dev = await live_world.user()
    await live_world.add_member(org, other_dev)
    headers = {"Idempotency-Key": "shared", "Async-Mode": "true"}
    mine = await dev.client.post(predict_url(deployment), json={"input": "a"}, headers=headers)
    theirs = await other_dev.client.post(
        predict_url(deployment), json={"input": "b"}, headers=headers
    )
    assert theirs.status_code == 202
    assert theirs.json()["prediction_id"] != mine.json()["prediction_id"]


async def test_concurrent_duplicates_with_one_key_create_one_prediction(
    live_app: FastAPI, live_world: World
) -> None:
    _, dev, deployment = await running_deployment(live_world)
    headers = {"Idempotency-Key": "burst", "Async-Mode": "true"}
    responses = await asyncio.gather(
        *(
            dev.client.post(predict_url(deployment), json={"input": "x"}, headers=headers)
            for _ in range(8)
        )
    )
    assert {r.status_code for r in responses} <= {200, 202}
    assert len({r.json()["prediction_id"] for r in responses}) == 1
    listed = await dev.client.get(f"/api/v1/deployments/{deployment['id']}/predictions")
    assert len(listed.json()) == 1


async def test_ending_a_deployment_fails_its_unfinished_predictions(
    app_factory: AppFactory, client_factory: ClientFactory, app: FastAPI
) -> None:
    slow = app_factory(worker_in_process=True, mock_delay_min=30, mock_delay_max=30)
    async with LifespanManager(slow):
        world = World(lambda: client_factory(slow))
        _, dev, deployment = await running_deployment(world)
        accepted = await dev.client.post(
            predict_url(deployment), json={"input": "x"}, headers={"Async-Mode": "true"}
        )
        await dev.client.post(f"/api/v1/deployments/{deployment['id']}/complete")
        done = await poll(dev.client, accepted.json()["prediction_id"])
    assert done["status"] == "failed"
    assert done["error"] == "deployment ended"


async def test_predictions_list_filters_and_pages(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    ids = []
    for text in ("a", "b", "c"):
        response = await dev.client.post(predict_url(deployment), json={"input": text})
        ids.append(response.json()["prediction_id"])
    base = f"/api/v1/deployments/{deployment['id']}/predictions"
    listed = await dev.client.get(f"{base}?status=completed&limit=2")
    assert [p["prediction_id"] for p in listed.json()] == ids[:2]
    assert listed.headers["X-Total-Count"] == "3"
    assert (await dev.client.get(f"{base}?status=failed")).json() == []


async def test_model_catalog(live_world: World) -> None:
    _, dev, _ = await running_deployment(live_world)
    models = {m["name"]: m for m in (await dev.client.get("/api/v1/models")).json()}
    assert set(models) == {"mock", "distilbert-sst2", "gemma3:1b"}
    assert models["mock"]["available"] is True
    for model in models.values():
        assert set(model) == {"name", "runtime", "task", "description", "available", "detail"}
        assert model["available"] or model["detail"]


async def test_prediction_metrics_move(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)

    def completed(text: str) -> float:
        prefix = 'mlops_predictions_total{model="mock",status="completed"}'
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    before = completed((await dev.client.get("/metrics")).text)
    await dev.client.post(predict_url(deployment), json={"input": "x"})
    text = (await dev.client.get("/metrics")).text
    assert completed(text) == before + 1
    assert 'mlops_prediction_duration_seconds_count{model="mock"}' in text
    assert "mlops_prediction_queue_depth" in text


async def test_nul_in_prediction_input_is_422(live_world: World) -> None:
    _, dev, deployment = await running_deployment(live_world)
    response = await dev.client.post(predict_url(deployment), json={"input": "a\x00b"})
    assert assert_error(response, 422, "validation_error")["fields"][0]["field"] == "input"


async def test_the_in_process_worker_wakes_a_synchronous_caller_itself(
    app: FastAPI,
    app_factory: AppFactory,
    client_factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not NOTIFY's round trip through the database (SQLite has none), nor the poll behind it:
    the worker in this process tells the waiting caller once the outcome is committed."""
    monkeypatch.setattr(predictions_service, "POLL_SECONDS", 60)
    monkeypatch.setattr(predictions_service, "NOTIFIED_POLL_SECONDS", 60)
    live = app_factory(worker_in_process=True, mock_delay_min=0.2, mock_delay_max=0.2)
    woken: list[str] = []
    handed: list[bool] = []
    async with LifespanManager(live):
        notifier = live.state.notifier
        await notifier.stop()  # no NOTIFY reaches this process any more
        told = notifier.finished_here

        def telling(outcomes: Mapping[uuid.UUID, object | None]) -> None:
            woken.extend(str(i) for i in outcomes if i in notifier._watchers)
            handed.extend(outcome is not None for outcome in outcomes.values())
            told(outcomes)

        monkeypatch.setattr(notifier, "finished_here", telling)
        world = World(lambda: client_factory(live))
        _, dev, deployment = await running_deployment(world)
        answered = [
            await dev.client.post(predict_url(deployment), json={"input": f"x{i}"})
            for i in range(3)
        ]
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert woken == [r.json()["prediction_id"] for r in answered]  # each was watching, and told
    assert handed == [True, True, True]  # with the row the worker wrote: nothing to read again


async def test_a_synchronous_prediction_is_inserted_claimed_by_the_in_process_worker(
    app_factory: AppFactory, client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No claim transaction and no wake-up on this path: the row is inserted running under the
    lease of this process's worker (what a claim would have written) and handed to it. With
    claims made impossible, the synchronous prediction still completes; an asynchronous one
    waits in the queue for a claim, as before."""
    live = app_factory(worker_in_process=True, mock_delay_min=0, mock_delay_max=0)
    async with LifespanManager(live):
        await live.state.worker_start  # started: it takes predictions from now on
        worker = live.state.worker

        async def no_claims(*args: object, **kwargs: object) -> list[object]:
            return []

        monkeypatch.setattr(prediction_states, "claim", no_claims)
        world = World(lambda: client_factory(live))
        _, dev, deployment = await running_deployment(world)
        synchronous = await dev.client.post(predict_url(deployment), json={"input": "direct"})
        queued = await dev.client.post(
            predict_url(deployment), json={"input": "queued"}, headers={"Async-Mode": "true"}
        )
        await asyncio.sleep(0.3)
        async with live.state.sessionmaker() as db:
            ran = await db.get(Prediction, uuid.UUID(synchronous.json()["prediction_id"]))
            waiting = await db.get(Prediction, uuid.UUID(queued.json()["prediction_id"]))
    assert synchronous.status_code == 200, synchronous.text
    assert synchronous.json()["output"]["input"] == "direct"
    assert ran is not None and ran.status == PredictionStatus.completed
    assert (ran.attempts, ran.worker_id) == (1, worker.id)
    assert ran.started_at is not None and ran.started_at >= ran.created_at
    assert queued.status_code == 202
    assert waiting is not None and waiting.status == PredictionStatus.queued
