"""The errors a user causes read well: malformed JSON names the body and the line and column, a
length limit says what it counts, a 401 says why there is no session, and every error body is
written by one function, whoever answers."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update

from app.core.security import CookieSigner, new_session_token
from app.models.session import UserSession
from tests.conftest import TEST_SECRET
from tests.support.api import World, assert_error

JSON = {"Content-Type": "application/json"}


def fields(response: httpx.Response) -> list[dict[str, str]]:
    body = assert_error(response, 422, "validation_error")
    found: list[dict[str, str]] = body["fields"]
    return found


# --- malformed JSON: the body, and where in it -----------------------------------------------


async def test_malformed_json_names_the_body_and_its_line_and_column(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=b'{"username": "ada" "password": "x"}', headers=JSON
    )
    assert fields(response) == [
        {"field": "body", "message": "Invalid JSON at line 1, column 20: Expecting ',' delimiter"}
    ]


async def test_malformed_json_on_a_later_line_counts_lines(client: httpx.AsyncClient) -> None:
    document = b'{\n  "username": "ada",\n  "password": \n}'
    response = await client.post("/api/v1/auth/login", content=document, headers=JSON)
    assert fields(response) == [
        {"field": "body", "message": "Invalid JSON at line 4, column 1: Expecting value"}
    ]


# --- length limits: characters for strings, entries for lists ---------------------------------


async def deployment_of(world: World) -> tuple[httpx.AsyncClient, str, str]:
    """A member's client, a cluster id and one of its deployments' ids."""
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org)
    deployment = await world.deployment(admin, cluster)
    return admin.client, cluster, deployment["id"]


def messages(response: httpx.Response) -> dict[str, str]:
    found = {item["field"]: item["message"] for item in fields(response)}
    for message in found.values():
        assert "items" not in message, message
    return found


async def test_a_too_long_prediction_input_counts_characters(world: World) -> None:
    client, _, deployment_id = await deployment_of(world)
    url = f"/api/v1/deployments/{deployment_id}/predict"
    too_long = await client.post(url, json={"input": "x" * 100_001})
    assert messages(too_long) == {
        "input": "String should have at most 100000 characters, not 100001"
    }
    empty = await client.post(url, json={"input": ""})
    assert messages(empty) == {"input": "String should have at least 1 character, not 0"}


async def test_too_many_dependencies_count_entries_and_a_long_name_characters(
    world: World,
) -> None:
    client, cluster, _ = await deployment_of(world)
    body: dict[str, Any] = {
        "name": "n" * 101,
        "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0},
        "depends_on": [f"00000000-0000-4000-8000-{i:012d}" for i in range(33)],
    }
    response = await client.post(f"/api/v1/clusters/{cluster}/deployments", json=body)
    assert messages(response) == {
        "name": "String should have at most 100 characters",
        "depends_on": "List should have at most 32 entries, not 33",
    }


# --- 401: why there is no session ---------------------------------------------------------------


async def test_no_cookie_is_authentication_required(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert body["error"] == "Authentication required."


async def test_an_expired_session_says_when_it_expired(world: World, app: FastAPI) -> None:
    user = await world.user()
    async with app.state.sessionmaker() as db:
        expired = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
        await db.execute(update(UserSession).values(expires_at=expired))
        await db.commit()
    body = assert_error(await user.client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert body["error"] == "Your session expired at 2026-01-02T03:04:05Z; sign in again."


async def test_a_logged_out_tampered_or_unknown_session_is_no_longer_valid(
    world: World, client: httpx.AsyncClient
) -> None:
    user = await world.user()
    cookie = user.client.cookies["session"]
    assert (await user.client.post("/api/v1/auth/logout")).status_code == 204
    token, signature = cookie.rsplit(".", 1)
    for value in (
        cookie,  # logged out
        f"{token}x.{signature}",  # tampered with
        CookieSigner(TEST_SECRET).sign(new_session_token()),  # signed, never issued
    ):
        client.cookies.set("session", value)
        body = assert_error(await client.get("/api/v1/auth/me"), 401, "not_authenticated")
        assert body["error"] == "Your session is no longer valid; sign in again.", value


async def test_a_valid_session_costs_one_statement_and_only_a_refusal_a_second(
    world: World, app: FastAPI
) -> None:
    user = await world.user()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "sessions" in statement:
            statements.append(statement)

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await user.client.get("/api/v1/auth/me")).status_code == 200
        assert len(statements) == 1, statements
        async with app.state.sessionmaker() as db:
            expired = datetime(2026, 1, 2, tzinfo=UTC)
            await db.execute(update(UserSession).values(expires_at=expired))
            await db.commit()
        statements.clear()
        assert_error(await user.client.get("/api/v1/auth/me"), 401, "not_authenticated")
        assert len(statements) == 2, statements
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)


# --- one body and one set of headers for every error --------------------------------------------


def header_names(response: httpx.Response) -> list[bytes]:
    return [name.lower() for name, _ in response.headers.raw]


@pytest.fixture
def boom(app: FastAPI) -> None:
    @app.get("/boom")
    async def fail() -> None:
        raise RuntimeError("unexpected")


@pytest.mark.usefixtures("boom")
async def test_the_middleware_writes_its_errors_as_the_handlers_do(
    client: httpx.AsyncClient,
) -> None:
    not_found = await client.get("/api/v1/nothing-here")  # an exception handler's answer
    unsupported = await client.post(  # the edge middleware's own answers
        "/api/v1/auth/login", content=b"x=1", headers={"Content-Type": "text/plain"}
    )
    too_large = await client.post(
        "/api/v1/auth/login", content=b"x" * (1024 * 1024 + 1), headers=JSON
    )
    failed = await client.get("/boom", headers={"X-Request-ID": "req-1"})
    assert not_found.content == b'{"error":"Not found.","code":"not_found"}'
    assert unsupported.content == (
        b'{"error":"Request bodies must be application/json.","code":"unsupported_media_type"}'
    )
    assert too_large.content == (
        b'{"error":"The request body exceeds 1 MiB.","code":"payload_too_large"}'
    )
    assert failed.content == (
        b'{"error":"An unexpected error occurred.","code":"internal_error","request_id":"req-1"}'
    )
    for response in (unsupported, too_large, failed):
        assert header_names(response) == header_names(not_found), response.status_code
        assert response.headers["content-type"] == not_found.headers["content-type"]
        assert response.headers["content-length"] == str(len(response.content))
    assert not_found.headers["content-type"] == "application/json"
