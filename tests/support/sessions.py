"""Helpers of the session tests: browsers signing in, cookies replayed, password changes."""

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.models.session import UserSession
from tests.support.api import PASSWORD, User, World, assert_error

ME = "/api/v1/auth/me"
NEW_PASSWORD = "battery-staple-97"


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def browser(world: World, user: User) -> httpx.AsyncClient:
    """Another browser of `user`, signed in: its own cookie jar, its own session."""
    client = world.new_client()
    assert (await sign_in(client, user.username)).status_code == 200
    return client


def replaying(world: World, cookie: str) -> httpx.AsyncClient:
    """A client that sends a cookie value it kept, whatever the server answers since."""
    client = world.new_client()
    client.cookies.set("session", cookie)
    return client


async def assert_signed_out(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get(ME), 401, "not_authenticated")
    assert body["error"] == "Your session is no longer valid; sign in again."


async def change_password(
    client: httpx.AsyncClient, current: str = PASSWORD, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/password", json={"current_password": current, "new_password": new}
    )


async def session_count(app: FastAPI, user: User) -> int:
    async with app.state.sessionmaker() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(UserSession)
            .where(UserSession.user_id == uuid.UUID(user.id))
        )
    return count or 0
