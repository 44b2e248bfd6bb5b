"""What a callback sends: the event, the same bytes on every attempt, and the Standard Webhooks
headers that sign it for one attempt: `webhook-id` (the prediction id, the same on every retry,
for the receiver to drop duplicates), `webhook-timestamp` (the attempt's time, in Unix seconds)
and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` keyed with the
organization's secret), computed by the `standardwebhooks` library the receivers verify with."""

import json
from datetime import UTC, datetime

from standardwebhooks import Webhook

from app.models.prediction import Prediction
from app.schemas.prediction import prediction_out


def event_type(prediction: Prediction) -> str:
    """`prediction.completed`, `prediction.failed`, `prediction.cancelled` or
    `prediction.expired`."""
    return f"prediction.{prediction.status.value}"


def event_body(prediction: Prediction) -> bytes:
    """`{"type", "timestamp" (when it finished), "data" (the prediction as the API answers it)}`.
    `webhook_state` is left out of `data`: while it is being delivered it is always `pending`."""
    data = prediction_out(prediction).model_dump(mode="json")
    data.pop("webhook_state", None)
    event = {"type": event_type(prediction), "timestamp": data["completed_at"], "data": data}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The headers of one attempt at `at`, signed with `secret` (`whsec_...`)."""
    seconds = int(at.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": Webhook(secret).sign(
            message_id, datetime.fromtimestamp(seconds, UTC), body
        ),
    }
