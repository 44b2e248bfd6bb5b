"""Workers are visible: a synchronous predict with no live worker for its model says so at once
instead of waiting out SYNC_PREDICT_TIMEOUT; an asynchronous one is queued and says nobody will run
it yet; /metrics shows the workers alive and how long the oldest queued prediction has waited.
(These apps run no worker in process, as WORKER_IN_PROCESS=false deployments do.)"""

from typing import Any

import pytest
from fastapi import FastAPI

from app.db.base import utcnow
from app.services import worker_heartbeats
from tests.support.api import Org, User, World, assert_error

pytestmark = pytest.mark.both_backends


async def scene(world: World) -> tuple[User, dict[str, Any]]:
    admin = await world.user()
    org: Org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    return admin, await world.deployment(admin, cluster, cpu=1, model="mock")


def predict(user: User, deployment: dict[str, Any], **headers: str) -> Any:
    return user.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "hi"}, headers=headers
    )


async def test_sync_predict_without_a_live_worker_says_so_at_once(world: World) -> None:
    user, deployment = await scene(world)
    body = assert_error(await predict(user, deployment), 503, "no_worker")
    assert "mlops worker" in body["error"] and "Async-Mode" in body["error"]
    listed = await user.client.get(f"/api/v1/deployments/{deployment['id']}/predictions")
    assert listed.json() == [], "a refused sync prediction is not stored"


async def test_async_predict_without_a_live_worker_is_queued_with_a_warning(
    world: World,
) -> None:
    user, deployment = await scene(world)
    response = await predict(user, deployment, **{"Async-Mode": "true"})
    assert response.status_code == 202
    assert "no worker" in response.json()["warning"].lower()
    polled = await user.client.get(response.headers["Location"])
    assert_error(polled, 400, "prediction_pending")
    metrics = (await user.client.get("/metrics")).text
    assert "mlops_workers_alive 0.0" in metrics
    assert "mlops_prediction_queue_depth 1.0" in metrics
    oldest = [line for line in metrics.splitlines() if line.startswith("mlops_prediction_oldest")]
    assert len(oldest) == 1 and float(oldest[0].split()[-1]) >= 0


async def test_a_worker_of_other_models_does_not_count(app: FastAPI, world: World) -> None:
    user, deployment = await scene(world)
    await worker_heartbeats.beat(app.state.sessionmaker, "gpu:7:x", ["distilbert-sst2"], utcnow())
    assert_error(await predict(user, deployment), 503, "no_worker")
    response = await predict(user, deployment, **{"Async-Mode": "1"})
    assert response.status_code == 202 and "warning" in response.json()


async def test_with_a_live_worker_for_the_model_the_prediction_is_simply_accepted(
    app: FastAPI, world: World
) -> None:
    user, deployment = await scene(world)
    await worker_heartbeats.beat(app.state.sessionmaker, "cpu:8:y", None, utcnow())
    response = await predict(user, deployment, **{"Async-Mode": "true"})
    assert response.status_code == 202
    assert response.json() == {
        "message": "Request received. Processing asynchronously.",
        "prediction_id": response.json()["prediction_id"],
    }
    metrics = (await user.client.get("/metrics")).text
    assert "mlops_workers_alive 1.0" in metrics


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "On", " true "])
async def test_async_mode_takes_the_usual_spellings_of_true(world: World, value: str) -> None:
    user, deployment = await scene(world)
    response = await predict(user, deployment, **{"Async-Mode": value})
    assert response.status_code == 202


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
async def test_async_mode_false_is_synchronous(world: World, value: str) -> None:
    user, deployment = await scene(world)
    # Synchronous, so with no worker alive it is refused at once rather than queued.
    assert_error(await predict(user, deployment, **{"Async-Mode": value}), 503, "no_worker")


@pytest.mark.parametrize("value", ["maybe", "2", "yes please", "async"])
async def test_async_mode_refuses_anything_else(world: World, value: str) -> None:
    user, deployment = await scene(world)
    body = assert_error(
        await predict(user, deployment, **{"Async-Mode": value}), 422, "validation_error"
    )
    assert body["fields"][0]["field"] == "Async-Mode"
