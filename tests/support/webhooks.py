"""Helpers of the callback tests: read the secret and the attempts through the API, wait for a
callback to settle, and run webhook dispatchers beside a test (as workers would)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.services.webhooks.transport import Resolver, resolve
from app.workers.webhooks import WebhookDispatcher
from tests.support.api import Org, User

# Quick retries, a receiver on 127.0.0.1 allowed, mock predictions at once.
QUICK: dict[str, Any] = {
    "webhook_allowed_networks": "127.0.0.0/8",
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "mock_delay_min": 0.01,
    "mock_delay_max": 0.02,
}
SETTLED = ("delivered", "failed")


async def secret_of(org: Org) -> str:
    response = await org.admin.client.get(f"/api/v1/organizations/{org.id}/webhook-secret")
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def predict(user: User, deployment_id: str, **body: Any) -> str:
    """An asynchronous prediction (`{"input": "hello", **body}`); its id."""
    response = await user.client.post(
        f"/api/v1/deployments/{deployment_id}/predict",
        json={"input": "hello", **body},
        headers={"Async-Mode": "true"},
    )
    assert response.status_code == 202, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, within: float = 30
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def settled(client: httpx.AsyncClient, prediction_id: str) -> dict[str, Any]:
    """The prediction once finished and its callback `delivered` or `failed`."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        response = await client.get(f"/api/v1/predictions/{prediction_id}")
        if response.status_code == 200:
            found.update(response.json())
        return found.get("webhook_state") in SETTLED

    await eventually(done, f"the callback of {prediction_id} settled")
    return found


async def attempts_of(client: httpx.AsyncClient, prediction_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/predictions/{prediction_id}/webhook-attempts")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    assert response.headers["X-Total-Count"] == str(len(listed))
    return listed


@asynccontextmanager
async def dispatching(
    settings: Settings,
    *sessions: async_sessionmaker[AsyncSession],
    resolver: Resolver = resolve,
) -> AsyncIterator[None]:
    """One dispatcher per sessionmaker (each its own connections), running until the block ends."""
    tasks = [
        asyncio.create_task(WebhookDispatcher(settings, made, resolver).run()) for made in sessions
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception):  # a dispatcher that crashed: not a cancel
                raise outcome
