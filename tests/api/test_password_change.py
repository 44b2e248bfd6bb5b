"""Changing the password: the current one is needed, every other session of the user is revoked,
the one that made the change stays, and a sign-in with the old password racing the change gets
no session, whichever commits first."""

import asyncio
import threading

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core import security
from app.models.user import User as UserRow
from app.services import auth as auth_service
from tests.support.api import PASSWORD, AppFactory, ClientFactory, World, assert_error
from tests.support.sessions import (
    ME,
    NEW_PASSWORD,
    assert_signed_out,
    browser,
    change_password,
    replaying,
    sign_in,
)

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
    real_verify = security.password_context().verify

    def spy(secret: str, hash_: str) -> bool:
        threads.append(threading.current_thread())
        return bool(real_verify(secret, hash_))

    monkeypatch.setattr(security.password_context(), "verify", spy)
    loop_thread = threading.current_thread()
    assert (await change_password(ada.client)).status_code == 204
    assert threads and all(thread is not loop_thread for thread in threads)
    async with app.state.sessionmaker() as db:
        stored = await db.scalar(select(UserRow.password_hash).where(UserRow.id == ada.id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert NEW_PASSWORD not in stored


@pytest.mark.both_backends
async def test_a_wrong_current_password_is_403_and_changes_nothing(world: World) -> None:
    """403, not 401: the caller is signed in, and a client that reads 401 as "signed out" must
    not drop the session over a typo."""
    ada = await world.user()
    phone = await browser(world, ada)
    body = assert_error(
        await change_password(ada.client, current="not-my-password"), 403, "wrong_password"
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
        assert_error(await change_password(ada.client, current="guess-123"), 403, "wrong_password")
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
