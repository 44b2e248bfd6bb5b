"""Sessions as a user lives them, one browser per client (each its own cookie jar): signing in
again rotates the session, "sign out everywhere" revokes them all, a removed member is an outsider
from their very next request, and a password change keeps only the session that made it."""

import asyncio
import threading
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import security
from app.models.session import UserSession
from app.models.user import User as UserRow
from app.services import auth as auth_service
from tests.support.api import PASSWORD, AppFactory, ClientFactory, User, World, assert_error

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


# --- 1. Signing in again rotates the session ---------------------------------------------------


@pytest.mark.both_backends
async def test_signing_in_again_revokes_the_browsers_previous_session(world: World) -> None:
    ada = await world.user()
    old = ada.client.cookies["session"]
    again = await sign_in(ada.client, ada.username)
    assert again.status_code == 200
    new = again.cookies["session"]
    assert new != old
    assert (await ada.client.get(ME)).status_code == 200  # the new cookie works
    await assert_signed_out(replaying(world, old))  # the old one is revoked on the server


@pytest.mark.both_backends
async def test_another_user_signing_in_on_the_same_browser_revokes_the_first_session(
    world: World,
) -> None:
    ada, grace = await world.user(), await world.user()
    adas_cookie = ada.client.cookies["session"]
    switched = await sign_in(ada.client, grace.username)  # grace signs in on ada's browser
    assert switched.status_code == 200
    me = await ada.client.get(ME)
    assert me.json()["username"] == grace.username
    await assert_signed_out(replaying(world, adas_cookie))
    # Sessions of other browsers are not this browser's: grace's own browser stays signed in.
    assert (await grace.client.get(ME)).json()["username"] == grace.username


async def test_rotation_revokes_only_the_session_the_browser_held(world: World) -> None:
    ada = await world.user()
    laptop = await browser(world, ada)
    assert (await sign_in(ada.client, ada.username)).status_code == 200
    assert (await laptop.get(ME)).status_code == 200
    assert (await ada.client.get(ME)).status_code == 200


async def test_a_failed_sign_in_revokes_nothing(world: World) -> None:
    ada = await world.user()
    cookie = ada.client.cookies["session"]
    assert_error(
        await sign_in(ada.client, ada.username, "wrong-password"), 401, "invalid_credentials"
    )
    assert (await replaying(world, cookie).get(ME)).status_code == 200


async def test_a_revoked_or_forged_cookie_does_not_stop_a_sign_in(world: World) -> None:
    ada = await world.user()
    revoked = ada.client.cookies["session"]
    assert (await ada.client.post("/api/v1/auth/logout")).status_code == 204
    for value in (revoked, "garbage", security.CookieSigner("another-key").sign("token")):
        client = replaying(world, value)
        assert (await sign_in(client, ada.username)).status_code == 200
        assert (await client.get(ME)).status_code == 200


# --- 2. Sign out everywhere ----------------------------------------------------------------------


@pytest.mark.both_backends
async def test_signing_out_everywhere_revokes_every_session_of_the_user(
    world: World, app: FastAPI
) -> None:
    ada, grace = await world.user(), await world.user()
    laptop, phone = await browser(world, ada), await browser(world, ada)
    cookies = [c.cookies["session"] for c in (ada.client, laptop, phone)]
    assert await session_count(app, ada) == 3

    response = await laptop.delete("/api/v1/auth/sessions")
    assert response.status_code == 204
    assert response.content == b""
    set_cookie = response.headers["set-cookie"]
    assert 'session=""' in set_cookie or "Max-Age=0" in set_cookie
    for cookie in cookies:
        await assert_signed_out(replaying(world, cookie))
    assert await session_count(app, ada) == 0
    # Nobody else's sessions are touched, and signing in again works.
    assert (await grace.client.get(ME)).status_code == 200
    assert (await sign_in(phone, ada.username)).status_code == 200
    assert (await phone.get(ME)).status_code == 200


async def test_signing_out_everywhere_needs_a_session(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/api/v1/auth/sessions"), 401, "not_authenticated")


# --- 3. A removed member is an outsider from their next request ----------------------------------


@pytest.mark.both_backends
async def test_a_removed_member_gets_404_on_their_very_next_request(world: World) -> None:
    """Nothing about membership is cached: the session lookup reloads the user's organizations on
    every request (`principal_for_session`), and every org-scoped route loads its row through the
    caller's membership (`load_scoped`). So the member's requests just before the removal, from
    two browsers, change nothing about the ones just after."""
    admin, member = await world.user(), await world.user()
    org = await world.org(admin, developer=member)
    cluster = await world.cluster(org)
    deployment = (await world.deployment(member, cluster))["id"]
    queued = await member.client.post(
        f"/api/v1/deployments/{deployment}/predict",
        json={"input": "hello"},
        headers={"Async-Mode": "true"},
    )
    assert queued.status_code == 202, queued.text
    prediction = queued.json()["prediction_id"]
    second_browser = await browser(world, member)
    reads = {
        f"/api/v1/organizations/{org.id}": "organization_not_found",
        f"/api/v1/organizations/{org.id}/members": "organization_not_found",
        f"/api/v1/clusters/{cluster}": "cluster_not_found",
        f"/api/v1/deployments/{deployment}": "deployment_not_found",
        f"/api/v1/predictions/{prediction}": "prediction_not_found",
    }
    for client in (member.client, second_browser):  # whatever a cache could keep, warm it
        for path in reads:
            assert (await client.get(path)).status_code in (200, 400), path  # 400: pending
        assert [o["id"] for o in (await client.get(ME)).json()["organizations"]] == [org.id]

    removed = await admin.client.delete(f"/api/v1/organizations/{org.id}/members/{member.id}")
    assert removed.status_code == 204

    for client in (member.client, second_browser):
        for path, code in reads.items():
            assert_error(await client.get(path), 404, code)
        assert (await client.get(ME)).json()["organizations"] == []
        assert (await client.get("/api/v1/organizations")).json() == []
    new_deployment = {"name": "d", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}}
    writes: list[tuple[str, dict[str, Any] | None, str]] = [
        (f"/api/v1/clusters/{cluster}/deployments", new_deployment, "cluster_not_found"),
        (f"/api/v1/deployments/{deployment}/cancel", None, "deployment_not_found"),
        (f"/api/v1/deployments/{deployment}/predict", {"input": "x"}, "deployment_not_found"),
    ]
    for path, body, code in writes:
        response = await member.client.post(path, json=body, headers={"Async-Mode": "true"})
        assert_error(response, 404, code)
    # Their session itself is fine, and their deployment stays, for the admin to end.
    assert (await member.client.get(ME)).status_code == 200
    assert (await admin.client.get(f"/api/v1/deployments/{deployment}")).status_code == 200


async def test_a_member_removed_while_their_request_waits_is_refused_once_it_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose session was resolved before the removal committed, but whose row is loaded
    after, is refused too: membership is checked when the row is loaded, in the request's own
    transaction, not from what the session lookup found."""
    admin, member = await world.user(), await world.user()
    org = await world.org(admin, developer=member)
    cluster = await world.cluster(org)
    resolved, release = asyncio.Event(), asyncio.Event()
    real_lookup = auth_service.principal_for_session

    async def slow_lookup(conn: AsyncConnection, token: str) -> auth_service.Principal | None:
        principal = await real_lookup(conn, token)
        if principal is not None and str(principal.id) == member.id and not resolved.is_set():
            resolved.set()
            await release.wait()
        return principal

    monkeypatch.setattr(auth_service, "principal_for_session", slow_lookup)
    pending = asyncio.create_task(member.client.get(f"/api/v1/clusters/{cluster}"))
    await resolved.wait()
    removed = await admin.client.delete(f"/api/v1/organizations/{org.id}/members/{member.id}")
    assert removed.status_code == 204
    release.set()
    assert_error(await pending, 404, "cluster_not_found")


# --- 4. Changing the password ---------------------------------------------------------------------


@pytest.mark.both_backends
async def test_changing_the_password_keeps_this_session_and_revokes_the_others(
    world: World,
) -> None:
    ada, grace = await world.user(), await world.user()
    laptop, phone = await browser(world, ada), await browser(world, ada)
    kept = laptop.cookies["session"]

    response = await change_password(laptop)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "set-cookie" not in response.headers  # the cookie of this browser stays as it is

    assert (await laptop.get(ME)).status_code == 200
    assert (await replaying(world, kept).get(ME)).status_code == 200
    await assert_signed_out(ada.client)
    await assert_signed_out(phone)
    assert (await grace.client.get(ME)).status_code == 200  # other accounts are untouched

    fresh = world.new_client()
    assert_error(await sign_in(fresh, ada.username), 401, "invalid_credentials")
    assert (await sign_in(fresh, ada.username, NEW_PASSWORD)).status_code == 200


async def test_the_new_password_is_stored_as_argon2id_and_verified_off_the_event_loop(
    world: World, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = await world.user()
    threads: list[threading.Thread] = []
    real_verify = security._passwords.verify

    def spy(secret: str, hash_: str) -> bool:
        threads.append(threading.current_thread())
        return bool(real_verify(secret, hash_))

    monkeypatch.setattr(security._passwords, "verify", spy)
    loop_thread = threading.current_thread()
    assert (await change_password(ada.client)).status_code == 204
    assert threads and all(thread is not loop_thread for thread in threads)
    async with app.state.sessionmaker() as db:
        stored = await db.scalar(select(UserRow.password_hash).where(UserRow.id == ada.id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert NEW_PASSWORD not in stored


@pytest.mark.both_backends
async def test_a_wrong_current_password_is_401_and_changes_nothing(world: World) -> None:
    ada = await world.user()
    phone = await browser(world, ada)
    body = assert_error(
        await change_password(ada.client, current="not-my-password"), 401, "invalid_credentials"
    )
    assert body["error"] == "The current password is wrong."
    # Still signed in everywhere, and the old password still signs in.
    assert (await ada.client.get(ME)).status_code == 200
    assert (await phone.get(ME)).status_code == 200
    assert (await sign_in(world.new_client(), ada.username)).status_code == 200
    assert_error(
        await sign_in(world.new_client(), ada.username, NEW_PASSWORD), 401, "invalid_credentials"
    )


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (PASSWORD, "Value error, must differ from the current password"),
        ("short", "String should have at least 8 characters"),
        ("x" * 129, "String should have at most 128 characters"),
    ],
)
async def test_a_new_password_like_the_current_or_out_of_bounds_is_422(
    world: World, new: str, message: str
) -> None:
    ada = await world.user()
    response = await change_password(ada.client, new=new)
    body = assert_error(response, 422, "validation_error")
    assert body["fields"] == [{"field": "new_password", "message": message}]
    assert (await sign_in(world.new_client(), ada.username)).status_code == 200


async def test_changing_the_password_needs_a_session(client: httpx.AsyncClient) -> None:
    assert_error(await change_password(client), 401, "not_authenticated")


async def test_password_changes_count_against_the_sign_in_limit(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    """Guessing the current password through this route costs from the same per-address budget
    as guessing it at sign-in (`RATE_LIMIT_LOGIN`)."""
    app = app_factory(rate_limit_enabled=True, rate_limit_login="3/minute")
    world = World(lambda: client_factory(app))
    ada = await world.user()  # its sign-in spent one of the address's three
    for _ in range(2):
        assert_error(
            await change_password(ada.client, current="guess-123"), 401, "invalid_credentials"
        )
    assert_error(await change_password(ada.client, current="guess-789"), 429, "rate_limited")
    assert_error(await sign_in(world.new_client(), ada.username), 429, "rate_limited")


@pytest.mark.both_backends
async def test_a_sign_in_with_the_old_password_racing_the_change_gets_no_session(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sign-in that verified the old password while the change committed is refused: it
    re-reads the hash under the user's row lock before opening its session. Without that it would
    open a session with a password that no longer exists, which the change could not revoke."""
    ada = await world.user()
    verifying, release = asyncio.Event(), asyncio.Event()
    real_verify = security.verify_password
    calls = 0

    async def held_verify(password: str, password_hash: str | None) -> bool:
        nonlocal calls
        calls += 1
        valid = await real_verify(password, password_hash)
        if calls == 1:  # the racing sign-in: its password checked out, it has not written yet
            verifying.set()
            await release.wait()
        return valid

    monkeypatch.setattr(auth_service, "verify_password", held_verify)
    attacker = world.new_client()
    racing = asyncio.create_task(sign_in(attacker, ada.username))
    await verifying.wait()
    assert (await change_password(ada.client)).status_code == 204
    release.set()
    assert_error(await racing, 401, "invalid_credentials")
    assert "session" not in attacker.cookies
    assert_error(await attacker.get(ME), 401, "not_authenticated")
    assert (await ada.client.get(ME)).status_code == 200


@pytest.mark.both_backends
async def test_a_sign_in_that_commits_before_the_change_is_revoked_by_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: a sign-in with the old password that wins the row lock opens its session
    before the change deletes the other sessions, so the change revokes it."""
    ada = await world.user()
    hashing, release = asyncio.Event(), asyncio.Event()
    real_hash = security.hash_password

    async def held_hash(password: str) -> str:
        hashing.set()
        await release.wait()
        return await real_hash(password)

    monkeypatch.setattr(auth_service, "hash_password", held_hash)
    change = asyncio.create_task(change_password(ada.client))
    await hashing.wait()  # the current password is verified; nothing is written yet
    other = world.new_client()
    assert (await sign_in(other, ada.username)).status_code == 200
    release.set()
    assert (await change).status_code == 204
    await assert_signed_out(other)
