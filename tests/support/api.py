"""Scenario helpers: build the world in a line, assert the contract's error shape once."""

import itertools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

PASSWORD = "correct-horse-battery"
_counter = itertools.count()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    return body


def check_error_shape(response: httpx.Response) -> None:
    """Every error of the whole suite passes through here (an httpx response hook)."""
    if response.status_code < 400 or response.request.url.path == "/ready":
        return  # /ready's 503 has its own contract body: {"status", "reason"}
    raw = response.read().decode(errors="replace")
    assert "Traceback" not in raw, raw
    body = response.json()
    assert isinstance(body, dict), raw
    assert "detail" not in body, raw
    if response.request.url.path.startswith("/predict") and set(body) == {"error"}:
        return  # the classic API's own 404 and 400 bodies (app/schemas/classic.py)
    assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str), raw


async def check_error_shape_hook(response: httpx.Response) -> None:
    """`check_error_shape` as an httpx event hook of an async client."""
    await response.aread()
    check_error_shape(response)


@dataclass
class User:
    id: str
    username: str
    client: httpx.AsyncClient


@dataclass
class Org:
    id: str
    invite_code: str
    admin: User


@dataclass
class Key:
    """An API key as created (`body`), and a client that authenticates with it."""

    id: str
    secret: str
    body: dict[str, Any]
    client: httpx.AsyncClient


ClientFactory = Callable[..., httpx.AsyncClient]
AppFactory = Callable[..., FastAPI]


class World:
    """Creates users, signs them in (each with its own cookie jar), builds organizations."""

    def __init__(self, new_client: ClientFactory) -> None:
        self.new_client = new_client

    async def user(self, name: str | None = None) -> User:
        username = name or f"user{next(_counter)}"
        client = self.new_client()
        response = await client.post(
            "/api/v1/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        login = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        return User(id=response.json()["id"], username=username, client=client)

    async def org(self, admin: User | None = None, **members: User) -> Org:
        """`await world.org(admin, developer=dev, viewer=v)`: members join, then get the role."""
        admin = admin or await self.user()
        created = await admin.client.post("/api/v1/organizations", json={"name": "Acme ML"})
        assert created.status_code == 201, created.text
        org = Org(id=created.json()["id"], invite_code=created.json()["invite_code"], admin=admin)
        for role, member in members.items():
            await self.add_member(org, member, role.rstrip("0123456789"))
        return org

    async def add_member(self, org: Org, member: User, role: str = "developer") -> None:
        joined = await member.client.post(
            "/api/v1/organizations/join", json={"invite_code": org.invite_code}
        )
        assert joined.status_code == 200, joined.text
        if role != "developer":
            changed = await org.admin.client.patch(
                f"/api/v1/organizations/{org.id}/members/{member.id}", json={"role": role}
            )
            assert changed.status_code == 200, changed.text

    async def api_key(self, org: Org, role: str = "developer", **extra: Any) -> "Key":
        """A new API key of `org` (created by its admin), with a client that sends it."""
        response = await org.admin.client.post(
            f"/api/v1/organizations/{org.id}/api-keys",
            json={"name": extra.pop("name", f"key-{next(_counter)}"), "role": role, **extra},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        client = self.new_client(headers={"Authorization": f"Bearer {body['key']}"})
        return Key(id=body["id"], secret=body["key"], body=body, client=client)

    async def cluster(
        self, org: Org, cpu: float = 4, ram_gb: float = 16, gpu: int = 0, **extra: Any
    ) -> str:
        response = await org.admin.client.post(
            f"/api/v1/organizations/{org.id}/clusters",
            json={
                "name": extra.pop("name", f"cluster-{next(_counter)}"),
                "resources": {"cpu": cpu, "ram_gb": ram_gb, "gpu": gpu},
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        cluster_id: str = response.json()["id"]
        return cluster_id

    async def deployment(
        self,
        user: "User | Key",
        cluster_id: str,
        cpu: float = 1,
        ram_gb: float = 0,
        gpu: int = 0,
        **extra: Any,
    ) -> dict[str, Any]:
        response = await user.client.post(
            f"/api/v1/clusters/{cluster_id}/deployments",
            json={
                "name": extra.pop("name", f"deployment-{next(_counter)}"),
                "resources": {"cpu": cpu, "ram_gb": ram_gb, "gpu": gpu},
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


Live = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, World]]]
"""The `live` fixture: `async with live(**settings) as (app, world)`."""
