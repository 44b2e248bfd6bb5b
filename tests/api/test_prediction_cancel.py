"""Cancelling a prediction: in each state, by whom, what the worker running it does (stops the
model, records nothing), and a cancel racing the worker's finish (exactly one of them wins)."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core.config import Settings
from app.db.base import utcnow
from app.models.prediction import Prediction, PredictionStatus
from app.services import prediction_states
from tests.support.api import Live, Org, User, World, assert_error
from tests.support.predictions import counted, prediction_row, stored
from tests.support.workers import answering, eventually, mock_of, standalone_worker

ASYNC = {"Async-Mode": "true"}
SLOW = {"mock_delay_min": 30, "mock_delay_max": 30}
BODY_KEYS = {
    "prediction_id", "deployment_id", "model", "status", "input", "output", "error",
    "created_at", "completed_at",
}  # fmt: skip


async def running_deployment(world: World) -> tuple[Org, User, dict[str, Any]]:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    deployment = await world.deployment(dev, await world.cluster(org, cpu=2), cpu=1)
    assert deployment["status"] == "running"
    return org, dev, deployment


async def submit(user: User, deployment: dict[str, Any], **body: Any) -> str:
    response = await user.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict",
        json={"input": "hello", **body},
        headers=ASYNC,
    )
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def cancel(user: User, prediction_id: str | uuid.UUID) -> httpx.Response:
    return await user.client.post(f"/api/v1/predictions/{prediction_id}/cancel")


@pytest.mark.both_backends
async def test_a_queued_prediction_is_cancelled_at_once_and_never_runs(
    app: FastAPI, world: World
) -> None:
    _, dev, deployment = await running_deployment(world)
    prediction_id = await submit(dev, deployment)
    before = counted("cancelled")

    response = await cancel(dev, prediction_id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == BODY_KEYS  # no deadline asked for: the body it always had
    assert (body["status"], body["output"], body["error"]) == ("cancelled", None, None)
    assert body["completed_at"] is not None
    polled = await dev.client.get(f"/api/v1/predictions/{prediction_id}")
    assert polled.status_code == 200
    assert polled.json() == body
    listed = await dev.client.get(
        f"/api/v1/deployments/{deployment['id']}/predictions?status=cancelled"
    )
    assert [p["prediction_id"] for p in listed.json()] == [prediction_id]
    assert await prediction_states.claim(app.state.sessionmaker, "worker-x", 10, 30) == []
    row = await stored(app, prediction_id)
    assert (row.status, row.attempts, row.started_at) == (PredictionStatus.cancelled, 0, None)
    assert counted("cancelled") == before + 1


@pytest.mark.both_backends
@pytest.mark.parametrize(
    "status", [PredictionStatus.completed, PredictionStatus.failed, PredictionStatus.expired]
)
async def test_a_finished_prediction_cannot_be_cancelled(
    app: FastAPI, world: World, status: PredictionStatus
) -> None:
    _, dev, deployment = await running_deployment(world)
    finished = prediction_row(
        deployment,
        dev.id,
        status,
        output={"input": "x", "result": "1234"} if status == PredictionStatus.completed else None,
        error="boom" if status == PredictionStatus.failed else None,
        completed_at=utcnow(),
    )
    async with app.state.sessionmaker() as db:
        db.add(finished)
        await db.commit()

    body = assert_error(await cancel(dev, finished.id), 409, "prediction_finished")

    assert body["error"] == f"The prediction is already {status}."
    row = await stored(app, finished.id)
    assert (row.status, row.output, row.error) == (status, finished.output, finished.error)


@pytest.mark.both_backends
async def test_cancelling_twice_is_409_the_second_time(world: World) -> None:
    _, dev, deployment = await running_deployment(world)
    prediction_id = await submit(dev, deployment)
    first = await cancel(dev, prediction_id)
    second = await cancel(dev, prediction_id)
    assert first.status_code == 200
    body = assert_error(second, 409, "prediction_finished")
    assert body["error"] == "The prediction is already cancelled."
    polled = await dev.client.get(f"/api/v1/predictions/{prediction_id}")
    assert polled.json() == first.json()  # the second cancel changed nothing


@pytest.mark.both_backends
async def test_developers_cancel_their_own_admins_anyone_s_outsiders_see_nothing(
    app: FastAPI, world: World
) -> None:
    org, dev, deployment = await running_deployment(world)
    other_dev, viewer, outsider = await world.user(), await world.user(), await world.user()
    await world.add_member(org, other_dev)
    await world.add_member(org, viewer, "viewer")
    mine, for_admin = await submit(dev, deployment), await submit(dev, deployment)

    denied = assert_error(await cancel(other_dev, mine), 403, "forbidden")
    assert denied["error"] == "Developers may only cancel their own predictions."
    assert_error(await cancel(viewer, mine), 403, "forbidden")
    assert_error(await cancel(outsider, mine), 404, "prediction_not_found")
    assert_error(await cancel(dev, uuid.uuid4()), 404, "prediction_not_found")
    assert (await stored(app, mine)).status == PredictionStatus.queued
    assert (await cancel(dev, mine)).json()["status"] == "cancelled"
    assert (await cancel(org.admin, for_admin)).json()["status"] == "cancelled"


@pytest.mark.both_backends
async def test_a_running_prediction_is_cancelled_and_its_model_stops(live: Live) -> None:
    async with live(**SLOW) as (app, world):
        worker = app.state.worker
        _, dev, deployment = await running_deployment(world)
        prediction_id = await submit(dev, deployment)
        await eventually(lambda: answering(worker) == 1, what="the model running")
        before = {status: counted(status) for status in ("cancelled", "completed", "failed")}

        response = await cancel(dev, prediction_id)

        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["output"]) == ("cancelled", None)
        await eventually(lambda: answering(worker) == 0, what="the model stopping")
        # A result that comes anyway is discarded: the row is no longer running under the worker.
        late = [(uuid.UUID(prediction_id), "mock", {"input": "hello", "result": "1"}, None)]
        assert await prediction_states.finish(app.state.sessionmaker, worker.id, late) == []
        row = await stored(app, prediction_id)
    assert (row.status, row.output, row.attempts) == (PredictionStatus.cancelled, None, 1)
    after = {status: counted(status) for status in before}
    assert {status: after[status] - before[status] for status in before} == {
        "cancelled": 1,
        "completed": 0,
        "failed": 0,
    }


@pytest.mark.both_backends
async def test_a_worker_in_another_process_stops_the_model_too(
    app: FastAPI, world: World, settings_factory: Callable[..., Settings], backend: str
) -> None:
    """On PostgreSQL the worker hears the cancel's NOTIFY (its lease is renewed far too seldom
    for the renewal to be what told it); on SQLite, which has none, its next lease renewal."""
    lease = 300 if backend == "postgresql" else 1.5
    settings = settings_factory(prediction_lease_seconds=lease, **SLOW)
    async with standalone_worker(settings) as worker:
        _, dev, deployment = await running_deployment(world)
        prediction_id = await submit(dev, deployment)
        await eventually(lambda: answering(worker) == 1, what="the model running")
        assert (await cancel(dev, prediction_id)).status_code == 200
        await eventually(lambda: answering(worker) == 0, what="the model stopping")
        runtime = mock_of(worker)
    assert runtime is not None and runtime.calls == 1
    assert (await stored(app, prediction_id)).status == PredictionStatus.cancelled


@pytest.mark.both_backends
async def test_the_model_of_a_prediction_failed_with_its_deployment_stops_too(
    live: Live, backend: str
) -> None:
    """Ending a deployment fails its predictions in the API's transaction; the worker hears it
    by NOTIFY on PostgreSQL, at its next lease renewal on SQLite."""
    lease = 300 if backend == "postgresql" else 1.5
    async with live(prediction_lease_seconds=lease, **SLOW) as (app, world):
        _, dev, deployment = await running_deployment(world)
        prediction_id = await submit(dev, deployment)
        await eventually(lambda: answering(app.state.worker) == 1, what="the model running")
        ended = await dev.client.post(f"/api/v1/deployments/{deployment['id']}/complete")
        assert ended.status_code == 200, ended.text
        await eventually(lambda: answering(app.state.worker) == 0, what="the model stopping")
        row = await stored(app, prediction_id)
    assert (row.status, row.error) == (PredictionStatus.failed, "deployment ended")


@pytest.mark.both_backends
async def test_a_synchronous_caller_whose_prediction_is_cancelled_gets_409(live: Live) -> None:
    async with live(**SLOW) as (app, world):
        _, dev, deployment = await running_deployment(world)
        waiting = asyncio.create_task(
            dev.client.post(
                f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "hello"}
            )
        )
        await eventually(lambda: answering(app.state.worker) == 1, what="the model running")
        async with app.state.sessionmaker() as db:
            prediction_id = await db.scalar(select(Prediction.id))
        assert prediction_id is not None
        assert (await cancel(dev, prediction_id)).status_code == 200
        answered = await waiting
    body = assert_error(answered, 409, "prediction_cancelled")
    assert body["prediction_id"] == str(prediction_id)


async def test_a_cancel_racing_the_finish_ends_one_way_only(app: FastAPI, world: World) -> None:
    """The worker's finish and the cancel, round after round on PostgreSQL's real concurrency,
    the finish sent from 0 to 20 ms after the cancel (which has authentication and a read to do
    first), so that rounds fall on either side and in between: exactly one of them writes, and
    each says so."""
    _, dev, deployment = await running_deployment(world)
    sessions = app.state.sessionmaker
    output = {"input": "x", "result": "4321"}

    async def finish(prediction_id: uuid.UUID, after: float) -> list[Prediction]:
        await asyncio.sleep(after)
        return await prediction_states.finish(
            sessions, "w", [(prediction_id, "mock", output, None)]
        )

    for round_ in range(60):
        running = prediction_row(
            deployment, dev.id, PredictionStatus.running, worker_id="w", started_at=utcnow()
        )
        async with sessions() as db:
            db.add(running)
            await db.commit()
        response, written = await asyncio.gather(
            cancel(dev, running.id), finish(running.id, (round_ % 11) * 0.002)
        )
        row = await stored(app, running.id)
        if response.status_code == 200:
            assert written == []
            assert (row.status, row.output) == (PredictionStatus.cancelled, None)
            assert response.json()["status"] == "cancelled"
        else:
            body = assert_error(response, 409, "prediction_finished")
            assert body["error"] == "The prediction is already completed."
            assert [r.id for r in written] == [running.id]
            assert (row.status, row.output) == (PredictionStatus.completed, output)
