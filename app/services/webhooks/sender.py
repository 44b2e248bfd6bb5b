"""One delivery attempt: POST the signed event to the callback URL and say how it went. It never
raises for anything the receiver, the network or the URL guard does; the whole attempt (resolving
the host included) is bounded by WEBHOOK_TIMEOUT_SECONDS, and the answer's body is never read."""

import asyncio
import time

import httpx

from app.db.base import utcnow
from app.services.webhooks.deliveries import Attempt, Delivery
from app.services.webhooks.signing import event_body, signed_headers
from app.services.webhooks.urls import CallbackRefused, UrlPolicy, check_url

ERROR_LIMIT = 500  # characters of an error kept in the attempt's log


async def send(
    client: httpx.AsyncClient, policy: UrlPolicy, delivery: Delivery, within: float
) -> Attempt:
    """The attempt, over in `within` seconds. The URL is checked again first: the policy may have
    changed since it was accepted."""
    prediction = delivery.prediction
    url = prediction.callback_url or ""
    body = event_body(prediction)
    attempted_at = utcnow()
    headers = signed_headers(delivery.secret, str(prediction.id), body, attempted_at)
    started = time.perf_counter()

    def attempt(
        status_code: int | None = None, error: str | None = None, refused: bool = False
    ) -> Attempt:
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return Attempt(url, attempted_at, elapsed_ms, status_code, error, refused)

    try:
        check_url(url, policy)
        async with (
            asyncio.timeout(within),
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            status = response.status_code
    except CallbackRefused as refused:
        return attempt(error=f"refused: {refused}", refused=True)
    except (TimeoutError, httpx.TimeoutException):
        return attempt(error=f"no answer within {within:g} s")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return attempt(error=_cut(f"{type(exc).__name__}: {exc}"))
    if response.is_redirect:
        location = _cut(response.headers.get("location", ""))
        return attempt(status_code=status, error=f"redirect to {location!r} not followed")
    return attempt(status_code=status)


def _cut(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT] + "…"
