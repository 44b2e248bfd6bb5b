"""Every row of the contract's Limits table that these routes take: 422 with `fields`."""

from typing import Any

import httpx
import pytest

from tests.support.api import World, assert_error

VALID = {"username": "ada", "email": "ada@example.com", "password": "password123"}


def field_names(response: httpx.Response) -> set[str]:
    body = assert_error(response, 422, "validation_error")
    assert body["fields"], body
    for item in body["fields"]:
        assert set(item) == {"field", "message"}
        assert item["message"]
    return {item["field"] for item in body["fields"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "a" * 33),
        ("username", "bad name"),
        ("username", "émile"),
        ("username", "semi;colon"),
        ("username", 12345),
        ("email", "not-an-address"),
        ("email", "a@"),
        ("email", ("x" * 64 + ".") * 3 + "@example.com"),
        ("email", "a" * 250 + "@example.com"),
        ("password", "short7!"),
        ("password", "p" * 129),
        ("password", None),
    ],
)
async def test_register_limits(client: httpx.AsyncClient, field: str, value: Any) -> None:
    response = await client.post("/api/v1/auth/register", json={**VALID, field: value})
    assert field in field_names(response)


@pytest.mark.parametrize(
    ("username", "password"), [("abc", "p" * 8), ("a" * 32, "p" * 128), ("a.b-c_d", "p" * 8)]
)
async def test_register_accepts_the_boundaries(
    client: httpx.AsyncClient, username: str, password: str
) -> None:
    body = {"username": username, "email": f"{username}@example.com", "password": password}
    assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201


async def test_missing_and_unknown_fields_are_named(client: httpx.AsyncClient) -> None:
    missing = await client.post("/api/v1/auth/register", json={"username": "ada"})
    assert {"email", "password"} <= field_names(missing)
    unknown = await client.post("/api/v1/auth/register", json={**VALID, "is_admin": True})
    assert "is_admin" in field_names(unknown)
    not_an_object = await client.post("/api/v1/auth/register", json=["ada"])
    assert field_names(not_an_object)


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 101, "tab\there", "nul\x00byte", "bell\x07", "del\x7f", None, 5]
)
async def test_organization_name_limits(world: World, name: Any) -> None:
    user = await world.user()
    response = await user.client.post("/api/v1/organizations", json={"name": name})
    assert field_names(response) == {"name"}


async def test_organization_name_is_trimmed_and_may_be_100_characters(world: World) -> None:
    user = await world.user()
    name = "é" + "x" * 99
    response = await user.client.post("/api/v1/organizations", json={"name": f"  {name}\n"})
    assert response.status_code == 201
    assert response.json()["name"] == name


async def test_login_body_is_validated(client: httpx.AsyncClient) -> None:
    assert {"password"} <= field_names(
        await client.post("/api/v1/auth/login", json={"username": "a"})
    )


async def test_join_body_is_validated(world: World) -> None:
    user = await world.user()
    response = await user.client.post("/api/v1/organizations/join", json={"code": "x"})
    assert "invite_code" in field_names(response)


async def test_nul_characters_are_rejected_not_stored(world: World) -> None:
    user = await world.user()
    login = await user.client.post(
        "/api/v1/auth/login", json={"username": "ad\x00a", "password": "whatever1"}
    )
    assert "username" in field_names(login)
    join = await user.client.post("/api/v1/organizations/join", json={"invite_code": "a\x00b"})
    assert "invite_code" in field_names(join)


async def test_lone_surrogates_and_undecodable_bodies_are_422(client: httpx.AsyncClient) -> None:
    surrogate = b'{"username": "ada", "email": "a@example.com", "password": "pass\\ud800word"}'
    response = await client.post(
        "/api/v1/auth/register", content=surrogate, headers={"Content-Type": "application/json"}
    )
    assert field_names(response)
    latin1 = '{"username": "adé", "password": "x"}'.encode("latin-1")
    undecodable = await client.post(
        "/api/v1/auth/login", content=latin1, headers={"Content-Type": "application/json"}
    )
    assert field_names(undecodable) == {"body"}


async def test_absurd_offsets_are_422(world: World) -> None:
    user = await world.user()
    response = await user.client.get("/api/v1/organizations?offset=9223372036854775808")
    assert field_names(response) == {"offset"}
