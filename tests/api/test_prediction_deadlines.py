"""Deadlines over HTTP: `ttl_seconds` (not started in time, a prediction expires without running)
and `timeout_seconds` (running too long, it fails and its model stops), bounded by the settings;
what synchronous callers are answered; the body shows the deadlines only when asked for."""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.db.base import utcnow
from app.models.prediction import PredictionStatus
from app.services import prediction_states
from tests.support.api import AppFactory, ClientFactory, Live, User, World, assert_error
from tests.support.predictions import counted, stored
from tests.support.workers import answering, eventually, mock_of, standalone_worker

pytestmark = pytest.mark.both_backends

SLOW = {"mock_delay_min": 30, "mock_delay_max": 30}
TIMED_OUT = "timed out after 1 s (timeout_seconds)"


async def deploy(world: World) -> tuple[User, str]:
    """A user and the predict path of their running mock deployment."""
    user = await world.user()
    org = await world.org(user)
    deployment = await world.deployment(user, await world.cluster(org))
    return user, f"/api/v1/deployments/{deployment['id']}/predict"


async def submit(user: User, path: str, **body: Any) -> str:
    """An asynchronous prediction's id."""
    response = await user.client.post(
        path, json={"input": "hello", **body}, headers={"Async-Mode": "true"}
    )
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def polled(user: User, prediction_id: str, within: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def finished() -> bool:
        response = await user.client.get(f"/api/v1/predictions/{prediction_id}")
        found.update(response.json())
        return response.status_code == 200

    await eventually(finished, within, what=f"prediction {prediction_id} finishing")
    return found


async def test_a_prediction_not_started_within_its_ttl_expires_and_never_runs(
    app: FastAPI, world: World, settings_factory: Callable[..., Settings]
) -> None:
    """No worker runs when it is accepted; once its ttl has passed, no claim takes it (even
    before a sweeper marked it), and the worker that starts then expires it instead of running
    it."""
    user, path = await deploy(world)
    prediction_id = await submit(user, path, ttl_seconds=1)
    expires_at = (await stored(app, prediction_id)).expires_at
    assert isinstance(expires_at, datetime)
    await asyncio.sleep((expires_at - utcnow()).total_seconds() + 0.05)
    assert await prediction_states.claim(app.state.sessionmaker, "w", 10, 30) == []
    before = counted("expired")

    async with standalone_worker(settings_factory()) as worker:
        body = await polled(user, prediction_id)
        await eventually(lambda: counted("expired") == before + 1, what="the expiry counted")
        ran = mock_of(worker)

    assert (body["status"], body["output"], body["error"]) == ("expired", None, None)
    assert body["expires_at"] is not None and "timeout_seconds" not in body
    row = await stored(app, prediction_id)
    assert (row.attempts, row.started_at, row.worker_id) == (0, None, None)
    assert ran is None or ran.calls == 0


async def test_a_prediction_running_past_its_timeout_fails_and_its_model_stops(
    live: Live,
) -> None:
    async with live(**SLOW) as (app, world):
        user, path = await deploy(world)
        before = counted("timeout")
        prediction_id = await submit(user, path, timeout_seconds=1)
        body = await polled(user, prediction_id)
        await eventually(lambda: answering(app.state.worker) == 0, what="the model stopping")
        await eventually(lambda: counted("timeout") == before + 1, what="the timeout counted")
        row = await stored(app, prediction_id)
    assert (body["status"], body["error"], body["output"]) == ("failed", TIMED_OUT, None)
    assert body["timeout_seconds"] == 1 and "expires_at" not in body
    assert (row.attempts, row.lease_expires_at) == (1, None)


async def test_a_synchronous_prediction_that_times_out_is_502(live: Live) -> None:
    async with live(**SLOW) as (_, world):
        user, path = await deploy(world)
        response = await user.client.post(path, json={"input": "x", "timeout_seconds": 1})
    body = assert_error(response, 502, "prediction_failed")
    assert body["error"] == f"The model failed: {TIMED_OUT}"


async def test_a_synchronous_prediction_that_expires_is_504(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker is alive but takes nothing (so it is queued, not run where it was accepted),
    while its sweeper goes on: the waiting caller is told once it has expired."""
    async with live() as (app, world):
        await app.state.worker_start

        async def no_claims(*args: object, **kwargs: object) -> list[object]:
            return []

        monkeypatch.setattr(prediction_states, "claim", no_claims)
        monkeypatch.setattr(app.state.worker, "owns_next", lambda model: None)
        user, path = await deploy(world)
        response = await user.client.post(path, json={"input": "x", "ttl_seconds": 1})
        body = assert_error(response, 504, "prediction_expired")
        row = await stored(app, body["prediction_id"])
    assert (row.status, row.attempts) == (PredictionStatus.expired, 0)


@pytest.mark.parametrize("field", ["ttl_seconds", "timeout_seconds"])
async def test_deadlines_are_bounded_by_the_settings_and_shown_when_asked_for(
    app: FastAPI, app_factory: AppFactory, client_factory: ClientFactory, field: str
) -> None:
    limited = app_factory(prediction_max_ttl_seconds=10, prediction_max_timeout_seconds=10)
    user, path = await deploy(World(lambda: client_factory(limited)))
    for value, message in ((11, f"{field} must be at most 10."), (0, None)):
        response = await user.client.post(
            path, json={"input": "x", field: value}, headers={"Async-Mode": "true"}
        )
        body = assert_error(response, 422, "validation_error")
        assert body["fields"][0]["field"] == field
        assert message is None or body["fields"][0]["message"] == message
    prediction_id = await submit(user, path, **{field: 10})
    await user.client.post(f"/api/v1/predictions/{prediction_id}/cancel")
    shown = (await user.client.get(f"/api/v1/predictions/{prediction_id}")).json()
    row = await stored(limited, prediction_id)
    if field == "ttl_seconds":
        assert "timeout_seconds" not in shown and row.expires_at is not None
        assert datetime.fromisoformat(shown["expires_at"]) == row.expires_at
    else:
        assert "expires_at" not in shown and shown["timeout_seconds"] == 10
