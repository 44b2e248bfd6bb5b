"""Building a world through a live server's JSON API, as a program would: for the browser tests,
which then look at it through the console."""

from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx


@dataclass
class Person:
    username: str
    password: str
    client: httpx.Client

    @property
    def id(self) -> str:
        me: str = self.client.get("/api/v1/auth/me").json()["id"]
        return me

    def cookie(self, base_url: str) -> Any:
        """The session cookie, for a browser context to be signed in as this person."""
        name, value = next(iter(self.client.cookies.items()))
        return {"name": name, "value": value, "url": base_url}

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        response = self.client.post(path, json=body, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def person(base_url: str, prefix: str = "user") -> Person:
    username = f"{prefix}-{uuid4().hex[:8]}"
    password = "correct-horse-42"
    client = httpx.Client(base_url=base_url, timeout=30)
    body = {"username": username, "email": f"{username}@example.com", "password": password}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    login = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return Person(username, password, client)


def join(member: Person, admin: Person, org: dict[str, Any], role: str) -> None:
    member.post("/api/v1/organizations/join", {"invite_code": org["invite_code"]})
    response = admin.client.patch(
        f"/api/v1/organizations/{org['id']}/members/{member.id}", json={"role": role}
    )
    assert response.status_code == 200, response.text


def deploy(owner: Person, cluster_id: str, name: str, cpu: float, priority: int) -> Any:
    body = {"name": name, "resources": {"cpu": cpu, "ram_gb": 1, "gpu": 0}, "priority": priority}
    return owner.post(f"/api/v1/clusters/{cluster_id}/deployments", body)
