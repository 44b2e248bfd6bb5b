"""The pure rules of a callback: what it sends and how that is signed (`signing`), and when the
next attempt comes or the delivery ends (`deliveries.Schedule`)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.core.security import new_webhook_secret
from app.models.prediction import FINAL_STATUSES, Prediction, PredictionStatus, WebhookState
from app.services.webhooks.deliveries import Attempt, Delivery, Schedule
from app.services.webhooks.signing import event_body, signed_headers

FINISHED = datetime(2026, 12, 3, 14, 52, 1, 960566, tzinfo=UTC)
SCHEDULE = Schedule(backoff_base=5, backoff_max=3600, retry_window=timedelta(hours=24))


def finished(status: PredictionStatus = PredictionStatus.completed) -> Prediction:
    return Prediction(
        id=uuid.uuid4(),
        deployment_id=uuid.uuid4(),
        model="mock",
        status=status,
        input="hello",
        output={"input": "hello", "result": "18328"}
        if status == PredictionStatus.completed
        else None,
        error=None if status == PredictionStatus.completed else "deployment ended",
        created_at=FINISHED - timedelta(seconds=13),
        completed_at=FINISHED,
        callback_url="https://hooks.example.com/predictions",
        webhook_state=WebhookState.pending,
    )


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_the_event_is_the_prediction_as_the_api_shows_it(status: PredictionStatus) -> None:
    prediction = finished(status)
    event = json.loads(event_body(prediction))
    assert event["type"] == f"prediction.{status.value}"
    assert event["timestamp"] == "2026-12-03T14:52:01.960566Z"
    assert event["data"]["prediction_id"] == str(prediction.id)
    assert event["data"]["status"] == status.value
    assert event["data"]["callback_url"] == "https://hooks.example.com/predictions"
    assert "webhook_state" not in event["data"]
    assert "expires_at" not in event["data"]  # absent as in the API's body: not asked for
    assert event_body(prediction) == event_body(prediction)


def test_the_headers_sign_id_timestamp_and_body() -> None:
    secret, body = new_webhook_secret(), event_body(finished())
    at = datetime.now(UTC)
    headers = signed_headers(secret, "the-id", body, at)
    assert headers["webhook-id"] == "the-id"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    for forged in (
        {**headers, "webhook-id": "another-id"},
        {**headers, "webhook-timestamp": str(int(at.timestamp()) - 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, forged)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    waits = [SCHEDULE.backoff(attempt).total_seconds() for attempt in range(1, 13)]
    assert waits == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    assert SCHEDULE.backoff(100_000) == timedelta(hours=1)


def attempt(status_code: int | None = None, refused: bool = False) -> Attempt:
    return Attempt(
        "https://hooks.example.com/predictions", FINISHED, 1.0, status_code, None, refused
    )


def delivery(number: int) -> Delivery:
    return Delivery(finished(), number, new_webhook_secret())


def test_what_an_attempt_leaves_the_delivery_in() -> None:
    now = FINISHED + timedelta(minutes=1)
    assert SCHEDULE.after(delivery(1), attempt(204), now) == (WebhookState.delivered, None)
    assert SCHEDULE.after(delivery(1), attempt(299), now) == (WebhookState.delivered, None)
    assert SCHEDULE.after(delivery(1), attempt(refused=True), now) == (WebhookState.failed, None)
    for failed in (attempt(500), attempt(302), attempt(404), attempt(None)):
        assert SCHEDULE.after(delivery(3), failed, now) == (
            WebhookState.pending,
            now + timedelta(seconds=20),
        )


def test_no_attempt_is_scheduled_past_the_retry_window() -> None:
    window_end = FINISHED + timedelta(hours=24)
    last_in = window_end - timedelta(hours=1)
    assert SCHEDULE.after(delivery(30), attempt(500), last_in) == (
        WebhookState.pending,
        window_end,
    )
    too_late = last_in + timedelta(microseconds=1)
    assert SCHEDULE.after(delivery(30), attempt(500), too_late) == (WebhookState.failed, None)
