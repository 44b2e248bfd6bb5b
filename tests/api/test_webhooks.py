"""Signed callbacks delivered for real: a receiver on 127.0.0.1 (`tests/support/receiver.py`)
verifies the Standard Webhooks signature with the secret the API gives, fails as scripted, and
the attempts are read back through the API. The in-process worker's dispatcher delivers, or, where
a test needs its own (a resolver, two of them), dispatchers run beside the test."""

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from app.core.config import Settings
from app.db.base import utcnow
from app.db.session import create_engine, create_sessionmaker
from app.models.prediction import Prediction, PredictionStatus, WebhookAttempt, WebhookState
from tests.support.api import AppFactory, ClientFactory, Live, Org, User, World
from tests.support.predictions import prediction_row
from tests.support.receiver import Receiver, receiving
from tests.support.webhooks import (
    QUICK,
    attempts_of,
    dispatching,
    eventually,
    predict,
    secret_of,
    settled,
)


async def running_deployment(world: World, **extra: Any) -> tuple[Org, User, dict[str, Any]]:
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    deployment = await world.deployment(admin, cluster, cpu=1, **extra)
    assert deployment["status"] == "running"
    return org, admin, deployment


@pytest.mark.both_backends
async def test_a_signed_callback_is_retried_until_the_receiver_accepts_it(live: Live) -> None:
    async with live(**QUICK) as (_, world):
        org, admin, deployment = await running_deployment(world)
        secret = await secret_of(org)
        with receiving(Receiver(answers=[500, 500], secret=secret)) as receiver:
            prediction_id = await predict(admin, deployment["id"], callback_url=receiver.url())
            prediction = await settled(admin.client, prediction_id)
    assert prediction["webhook_state"] == "delivered"
    assert prediction["callback_url"] == receiver.url()
    requests = receiver.at("/hook")
    assert [request.verified for request in requests] == [True, True, True]
    assert {request.headers["webhook-id"] for request in requests} == {prediction_id}
    assert {request.body for request in requests} == {requests[0].body}  # one event, resent
    event = json.loads(requests[0].body)
    assert event["type"] == "prediction.completed"
    assert event["timestamp"] == prediction["completed_at"]
    assert event["data"] == {k: v for k, v in prediction.items() if k != "webhook_state"}
    assert requests[0].headers["content-type"] == "application/json"
    attempts = await attempts_of(admin.client, prediction_id)
    assert [(a["attempt"], a["status_code"], a["error"]) for a in attempts] == [
        (1, 500, None),
        (2, 500, None),
        (3, 204, None),
    ]
    assert {a["url"] for a in attempts} == {receiver.url()}
    assert all(a["duration_ms"] >= 0 for a in attempts)
    assert attempts[0]["attempted_at"] <= attempts[1]["attempted_at"] <= attempts[2]["attempted_at"]


@pytest.mark.both_backends
async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(live: Live) -> None:
    async with live(**QUICK, webhook_retry_window_seconds=0.001) as (_, world):
        _, admin, deployment = await running_deployment(world)
        with receiving(Receiver()) as receiver:
            moved = receiver.url("/moved")
            prediction_id = await predict(admin, deployment["id"], callback_url=moved)
            prediction = await settled(admin.client, prediction_id)
    assert prediction["webhook_state"] == "failed"
    [attempt] = await attempts_of(admin.client, prediction_id)
    assert attempt["status_code"] == 302
    assert attempt["error"] == f"redirect to {receiver.url('/target')!r} not followed"
    assert len(receiver.at("/moved")) == 1
    assert receiver.at("/target") == []


@pytest.mark.both_backends
async def test_retries_stop_after_the_retry_window(live: Live) -> None:
    # A window long enough that a loaded machine still makes a second attempt within it.
    async with live(**QUICK, webhook_retry_window_seconds=5) as (_, world):
        _, admin, deployment = await running_deployment(world)
        with receiving(Receiver(answers=[500] * 1000)) as receiver:
            prediction_id = await predict(admin, deployment["id"], callback_url=receiver.url())
            prediction = await settled(admin.client, prediction_id)
    assert prediction["webhook_state"] == "failed"
    attempts = await attempts_of(admin.client, prediction_id)
    assert len(attempts) >= 2
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert {a["status_code"] for a in attempts} == {500}
    assert len(receiver.at("/hook")) == len(attempts)


@pytest.mark.both_backends
async def test_after_a_rotation_callbacks_are_signed_with_the_new_secret(live: Live) -> None:
    async with live(**QUICK) as (_, world):
        org, admin, deployment = await running_deployment(world)
        old = await secret_of(org)
        rotated = await admin.client.post(f"/api/v1/organizations/{org.id}/webhook-secret/rotate")
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        assert await secret_of(org) == new
        with receiving(Receiver(secret=old)) as receiver:  # a receiver not told yet
            prediction_id = await predict(admin, deployment["id"], callback_url=receiver.url())
            await eventually(lambda: _received(receiver), "a first attempt")
            first = receiver.at("/hook")[0]
            assert first.verified is False
            Webhook(new).verify(first.body, first.headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(first.body, first.headers)
            receiver.secret = new
            prediction = await settled(admin.client, prediction_id)
    assert prediction["webhook_state"] == "delivered"
    codes = [a["status_code"] for a in await attempts_of(admin.client, prediction_id)]
    assert set(codes[:-1]) == {401} and codes[-1] == 204


async def _received(receiver: Receiver) -> bool:
    return bool(receiver.received)


@pytest.mark.both_backends
async def test_a_receiver_that_hangs_holds_up_no_prediction(live: Live) -> None:
    async with live(**QUICK, webhook_timeout_seconds=60) as (_, world):
        _, admin, deployment = await running_deployment(world)
        with receiving(Receiver()) as receiver:
            slow = receiver.url("/slow")
            prediction_id = await predict(admin, deployment["id"], callback_url=slow)
            await eventually(lambda: _received(receiver), "the callback under way")
            for _ in range(3):
                response = await admin.client.post(
                    f"/api/v1/deployments/{deployment['id']}/predict", json={"input": "meanwhile"}
                )
                assert response.status_code == 200, response.text
            assert len(receiver.at("/slow")) == 1  # still unanswered
            receiver.release.set()
            prediction = await settled(admin.client, prediction_id)
    assert prediction["webhook_state"] == "delivered"


@pytest.mark.both_backends
async def test_a_failed_prediction_calls_back_at_the_deployment_default(
    app: FastAPI, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    """No worker runs: the prediction fails because its deployment is cancelled, a path that
    knows nothing of callbacks, and a dispatcher beside the test delivers it."""
    served = app_factory(**QUICK)
    world = World(lambda: client_factory(served))
    with receiving(Receiver()) as receiver:
        default = receiver.url("/hook")
        _, admin, deployment = await running_deployment(world, callback_url=default)
        assert deployment["callback_url"] == default
        by_default = await predict(admin, deployment["id"])
        own = await predict(admin, deployment["id"], callback_url=receiver.url("/target"))
        cancelled = await admin.client.post(f"/api/v1/deployments/{deployment['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        async with dispatching(served.state.settings, served.state.sessionmaker):
            first = await settled(admin.client, by_default)
            second = await settled(admin.client, own)
    assert first["callback_url"] == default and first["webhook_state"] == "delivered"
    assert second["callback_url"] == receiver.url("/target")
    [event] = [json.loads(request.body) for request in receiver.at("/hook")]
    assert event["type"] == "prediction.failed"
    assert event["data"]["status"] == "failed" and event["data"]["error"] == "deployment ended"
    assert event["data"]["prediction_id"] == by_default
    [other] = receiver.at("/target")
    assert json.loads(other.body)["data"]["prediction_id"] == own


@pytest.mark.both_backends
async def test_a_name_resolving_to_loopback_at_delivery_is_refused_once_for_good(
    app: FastAPI, world: World, settings_factory: Callable[..., Settings]
) -> None:
    """Accepted as a public name, it resolves to 127.0.0.1 when delivered (DNS rebinding): one
    attempt, refused before any connection, and no retry."""
    settings = settings_factory(webhook_backoff_base_seconds=0.05)
    _, admin, deployment = await running_deployment(world)
    with receiving(Receiver()) as receiver:
        url = receiver.url(host="hooks.example.com")
        prediction = await _finished_row(app, deployment, admin, url)

        async def rebinding(host: str, port: int) -> list[str]:
            return ["127.0.0.1"] if host == "hooks.example.com" else []

        async with dispatching(settings, app.state.sessionmaker, resolver=rebinding):
            found = await settled(admin.client, str(prediction.id))
    assert found["webhook_state"] == "failed"
    [attempt] = await attempts_of(admin.client, str(prediction.id))
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused: hooks.example.com is 127.0.0.1, a loopback address "
        "(not in WEBHOOK_ALLOWED_NETWORKS)"
    )
    assert receiver.received == []


async def _finished_row(
    app: FastAPI, deployment: dict[str, Any], user: User, callback_url: str
) -> Prediction:
    """A completed prediction whose callback is due, as a worker leaves it."""
    row = prediction_row(
        deployment,
        user.id,
        PredictionStatus.completed,
        output={"input": "x", "result": "1234"},
        completed_at=utcnow(),
        callback_url=callback_url,
        webhook_state=WebhookState.pending,
    )
    async with app.state.sessionmaker() as db:
        db.add(row)
        await db.commit()
    return row


async def test_two_dispatchers_deliver_each_callback_exactly_once(
    app: FastAPI, world: World, settings_factory: Callable[..., Settings]
) -> None:
    """Two workers' dispatchers, each on connections of its own, lease from one table: every
    callback is sent once (the receiver counts by `webhook-id`) and logged once."""
    settings = settings_factory(**QUICK)
    _, admin, deployment = await running_deployment(world)
    engines = [create_engine(settings.database_url) for _ in range(2)]
    try:
        with receiving(Receiver()) as receiver:
            rows = [await _finished_row(app, deployment, admin, receiver.url()) for _ in range(80)]
            async with dispatching(settings, *(create_sessionmaker(e) for e in engines)):
                await eventually(lambda: _all_delivered(app), "every callback delivered")
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))
    sent = Counter(request.headers["webhook-id"] for request in receiver.received)
    assert sent == {str(row.id): 1 for row in rows}
    async with app.state.sessionmaker() as db:
        logged = (
            await db.execute(select(WebhookAttempt.prediction_id, WebhookAttempt.attempt))
        ).all()
    assert sorted(logged) == sorted((row.id, 1) for row in rows)


async def _all_delivered(app: FastAPI) -> bool:
    async with app.state.sessionmaker() as db:
        left = await db.scalar(
            select(func.count())
            .select_from(Prediction)
            .where(Prediction.webhook_state != WebhookState.delivered)
        )
    return left == 0
