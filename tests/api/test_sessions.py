"""Sessions as a user lives them, one browser per client (each its own cookie jar): signing in
again rotates the session, "sign out everywhere" revokes them all, and a removed member is an
outsider from their very next request. (Password changes: test_password_change.py.)"""

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core import security
from app.services import auth as auth_service
from tests.support.api import World, assert_error
from tests.support.sessions import (
    ME,
    assert_signed_out,
    browser,
    replaying,
    session_count,
    sign_in,
)

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
