"""The load drill's scene: organizations of members, their clusters and deployments."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

DB_NAME = "mlops_bench_load_drill"
PASSWORD = "drill-password-123"
# MOCK_DELAY_MIN and MOCK_DELAY_MAX of the drill (the defaults, 10-17 s, would idle the users).
MOCK_DELAY = ("0.05", "0.3")
CHURN_CAPACITY = {"cpu": 4, "ram_gb": 8, "gpu": 1}
# Each request is one of these kinds, drawn by weight; a status outside its set is unexpected.
KINDS: dict[str, tuple[int, frozenset[int]]] = {
    "sign_in": (4, frozenset({200})),
    "cluster_read": (14, frozenset({200})),
    "create": (14, frozenset({201})),
    "complete": (6, frozenset({200, 409})),  # 409: that deployment had already ended
    "cancel": (3, frozenset({200, 409})),
    "predict_sync": (10, frozenset({200})),
    "predict_async": (14, frozenset({202})),
    "poll": (10, frozenset({200, 400})),  # 400: prediction_pending
    "list": (25, frozenset({200})),
}
Hooks = list[Callable[[httpx.Response], Awaitable[None]]]


@dataclass
class Org:
    id: str
    churn: list[str]
    clusters: list[str]
    serving: str  # the mock deployment that answers predictions


@dataclass
class Member:
    username: str
    client: httpx.AsyncClient
    org: Org
    deployments: list[str] = field(default_factory=list)  # own on the churn clusters, not ended
    running: list[str] = field(default_factory=list)  # of those, the ones last seen running
    predictions: list[str] = field(default_factory=list)  # own asynchronous ones

    def add(self, deployment: dict[str, Any]) -> None:
        self.deployments.append(deployment["id"])
        if deployment["status"] == "running":
            self.running.append(deployment["id"])


def new_client(base_url: str, hooks: Hooks) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=60, event_hooks={"response": hooks})


def expect(response: httpx.Response, status: int) -> Any:
    """The JSON body of an answer that must have `status` (setup and checks: any other stops)."""
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} "
            f"(expected {status}): {response.text[:300]}"
        )
    return response.json()


async def sign_up(base_url: str, hooks: Hooks, username: str) -> httpx.AsyncClient:
    client = new_client(base_url, hooks)
    credentials = {"username": username, "password": PASSWORD}
    register = {**credentials, "email": f"{username}@example.com"}
    expect(await client.post("/api/v1/auth/register", json=register), 201)
    expect(await client.post("/api/v1/auth/login", json=credentials), 200)
    return client


async def build_org(base_url: str, hooks: Hooks, number: int, size: int, tag: str) -> list[Member]:
    """An organization of `size` members (the first its admin), its clusters, its serving
    deployment, and one deployment of each member on each churn cluster to complete or cancel."""
    names = [f"drill{tag}-o{number}-u{i}" for i in range(size)]
    admin = await sign_up(base_url, hooks, names[0])
    created = expect(
        await admin.post("/api/v1/organizations", json={"name": f"Drill {number}"}), 201
    )

    async def cluster(name: str, resources: dict[str, int]) -> str:
        path = f"/api/v1/organizations/{created['id']}/clusters"
        return str(
            expect(await admin.post(path, json={"name": name, "resources": resources}), 201)["id"]
        )

    churn = [await cluster("churn-a", CHURN_CAPACITY), await cluster("churn-b", CHURN_CAPACITY)]
    serving_cluster = await cluster("serving", {"cpu": 8, "ram_gb": 16, "gpu": 0})
    serving = expect(
        await admin.post(
            f"/api/v1/clusters/{serving_cluster}/deployments",
            json={"name": "echo", "model": "mock", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}},
        ),
        201,
    )
    assert serving["status"] == "running", serving
    org = Org(created["id"], churn, [*churn, serving_cluster], serving["id"])
    members = [Member(names[0], admin, org)]
    for username in names[1:]:
        client = await sign_up(base_url, hooks, username)
        join = {"invite_code": created["invite_code"]}
        expect(await client.post("/api/v1/organizations/join", json=join), 200)
        members.append(Member(username, client, org))
    for member in members:
        for cluster_id in churn:
            filler = {"name": "filler", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}}
            path = f"/api/v1/clusters/{cluster_id}/deployments"
            member.add(expect(await member.client.post(path, json=filler), 201))
    return members


def churn_deployment(rng: random.Random) -> dict[str, Any]:
    """A creation body for a churn cluster: a random small size and priority, mostly allowed to
    preempt, so that creations keep evicting each other."""
    return {
        "name": "churn",
        "model": "mock",
        "resources": {
            "cpu": rng.choice([0.5, 1, 1.5, 2]),
            "ram_gb": rng.choice([0, 1, 2]),
            "gpu": rng.choice([0, 0, 1]),
        },
        "priority": rng.randint(0, 9),
        "preemption_policy": rng.choice(["preempt_lower_priority"] * 3 + ["never"]),
    }
