"""Auth: registration, sign-in, server-side sessions and the cookie (on PostgreSQL and SQLite)."""

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.core import security
from app.db.base import utcnow
from app.models.session import UserSession
from app.models.user import User
from tests.support.api import PASSWORD, AppFactory, ClientFactory, World, assert_error

pytestmark = pytest.mark.both_backends


async def register(
    client: httpx.AsyncClient, username: str, email: str | None = None
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register",
        json={
            "username": username,
            "email": email or f"{username}@example.com",
            "password": PASSWORD,
        },
    )


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def test_register_returns_the_user_without_secrets(client: httpx.AsyncClient) -> None:
    response = await register(client, "ada", "Ada@Example.com")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "email", "created_at"}
    assert body["username"] == "ada"
    assert body["email"] == "ada@example.com"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_duplicate_username_is_409_even_in_another_case(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    assert_error(await register(client, "ADA", "other@example.com"), 409, "username_taken")


async def test_duplicate_email_is_409_even_in_another_case(client: httpx.AsyncClient) -> None:
    await register(client, "ada", "ada@example.com")
    assert_error(await register(client, "grace", "ADA@example.com"), 409, "email_taken")


async def test_login_sets_a_hardened_session_cookie(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    response = await login(client, "ada")
    assert response.status_code == 200
    assert response.json()["username"] == "ada"
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("session=")
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "Max-Age=1800" in cookie
    assert "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes


async def test_cookie_is_secure_when_configured(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(session_cookie_secure=True, session_max_age=60))
    await register(client, "ada")
    cookie = (await login(client, "ada")).headers["set-cookie"]
    assert "Secure" in cookie
    assert "Max-Age=60" in cookie


async def test_wrong_password_and_unknown_user_are_indistinguishable(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(client, "ada")
    verified: list[str] = []
    real_verify = security.password_context().verify

    def spy(secret: str, hash_: str) -> bool:
        verified.append(hash_)
        return bool(real_verify(secret, hash_))

    monkeypatch.setattr(security.password_context(), "verify", spy)
    wrong = await login(client, "ada", "wrong-password")
    unknown = await login(client, "nobody", "wrong-password")
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    # The unknown user still paid for one argon2id verification (against the dummy hash).
    assert len(verified) == 2
    assert all(h.startswith("$argon2id$") for h in verified)


async def test_passwords_are_stored_as_argon2id(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "ada")
    async with app.state.sessionmaker() as db:
        stored = await db.scalar(select(User.password_hash))
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_each_login_issues_a_new_session_id(
    client_factory: ClientFactory, client: httpx.AsyncClient
) -> None:
    await register(client, "ada")
    first = (await login(client, "ada")).cookies["session"]
    elsewhere = client_factory()
    second = (await login(elsewhere, "ada")).cookies["session"]
    assert first != second
    # Two browsers, two live sessions (the same browser signing in again rotates: test_sessions).
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    assert (await elsewhere.get("/api/v1/auth/me")).status_code == 200


async def test_logout_revokes_the_session_on_the_server(
    client: httpx.AsyncClient, client_factory: ClientFactory
) -> None:
    await register(client, "ada")
    cookie = (await login(client, "ada")).cookies["session"]
    response = await client.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert (
        'session=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    replay = client_factory()
    replay.cookies.set("session", cookie)
    assert_error(await replay.get("/api/v1/auth/me"), 401, "not_authenticated")


async def test_expired_session_is_rejected(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "ada")
    await login(client, "ada")
    async with app.state.sessionmaker() as db:
        await db.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    assert_error(await client.get("/api/v1/auth/me"), 401, "not_authenticated")


async def test_session_expires_max_age_after_login_on_the_server(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "ada")
    before = utcnow()
    await login(client, "ada")
    async with app.state.sessionmaker() as db:
        expires_at = await db.scalar(select(UserSession.expires_at))
    assert expires_at is not None
    assert timedelta(seconds=1795) < expires_at - before < timedelta(seconds=1805)


async def test_tampered_cookie_is_rejected(
    client: httpx.AsyncClient, client_factory: ClientFactory
) -> None:
    await register(client, "ada")
    cookie = (await login(client, "ada")).cookies["session"]
    token, signature = cookie.rsplit(".", 1)
    forged = client_factory()
    for value in (f"{token}x.{signature}", f"{token}.{signature[:-2]}AA", token, "garbage"):
        forged.cookies.set("session", value)
        assert_error(await forged.get("/api/v1/auth/me"), 401, "not_authenticated")


async def test_cookie_signed_with_another_key_is_rejected(
    client: httpx.AsyncClient, client_factory: ClientFactory
) -> None:
    await register(client, "ada")
    cookie = (await login(client, "ada")).cookies["session"]
    token = cookie.rsplit(".", 1)[0]
    forged = client_factory()
    forged.cookies.set("session", security.CookieSigner("another-key").sign(token))
    assert_error(await forged.get("/api/v1/auth/me"), 401, "not_authenticated")


async def test_me_lists_organizations_with_roles(world: World) -> None:
    admin = await world.user()
    member = await world.user()
    org = await world.org(admin, viewer=member)
    response = await member.client.get("/api/v1/auth/me")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == member.id
    assert body["organizations"] == [{"id": org.id, "name": "Acme ML", "role": "viewer"}]


async def test_anonymous_me_and_logout_are_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert_error(await client.post("/api/v1/auth/logout"), 401, "not_authenticated")
