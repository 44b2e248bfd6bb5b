"""The load drill's traffic: each simulated user's loop of weighted requests, and their tally."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.load_drill.scene import KINDS, PASSWORD, Hooks, Member, churn_deployment, new_client


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    transport_errors: Counter[str] = field(default_factory=Counter)  # "kind: ExceptionName"

    async def call(self, kind: str, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        """Awaits `request` and records its status and latency under `kind` (None: it failed
        below HTTP, which is recorded too)."""
        sent = time.perf_counter()
        try:
            response = await request
        except httpx.TransportError as exc:
            self.transport_errors[f"{kind}: {type(exc).__name__}"] += 1
            return None
        self.latencies.setdefault(kind, []).append(time.perf_counter() - sent)
        self.statuses.setdefault(kind, Counter())[response.status_code] += 1
        return response


class User:
    """One simulated user: a request of a random kind, a think time, again, until `deadline`."""

    def __init__(self, member: Member, base_url: str, hooks: Hooks, rng: random.Random) -> None:
        self.member, self.base_url, self.hooks, self.rng = member, base_url, hooks, rng
        self.actions: dict[str, Callable[[Tally], Awaitable[None]]] = {
            "sign_in": self.sign_in,
            "cluster_read": self.cluster_read,
            "create": self.create,
            "complete": lambda tally: self.end(tally, "complete"),
            "cancel": lambda tally: self.end(tally, "cancel"),
            "predict_sync": self.predict_sync,
            "predict_async": self.predict_async,
            "poll": self.poll,
            "list": self.listing,
        }

    async def run(self, tally: Tally, deadline: float, think: tuple[float, float]) -> None:
        names, weights = list(KINDS), [weight for weight, _ in KINDS.values()]
        await asyncio.sleep(self.rng.uniform(0, think[1]))  # users arrive spread out
        while time.monotonic() < deadline:
            await self.actions[self.rng.choices(names, weights)[0]](tally)
            await asyncio.sleep(self.rng.uniform(*think))

    @property
    def client(self) -> httpx.AsyncClient:
        return self.member.client

    async def sign_in(self, tally: Tally) -> None:
        # A fresh cookie jar and connection, as a new browser would sign in.
        async with new_client(self.base_url, self.hooks) as fresh:
            body = {"username": self.member.username, "password": PASSWORD}
            await tally.call("sign_in", fresh.post("/api/v1/auth/login", json=body))

    async def cluster_read(self, tally: Tally) -> None:
        org = self.member.org
        path = self.rng.choice(
            [f"/organizations/{org.id}/clusters", f"/clusters/{self.rng.choice(org.clusters)}"]
        )
        await tally.call("cluster_read", self.client.get(f"/api/v1{path}"))

    async def create(self, tally: Tally) -> None:
        body = churn_deployment(self.rng)
        path = f"/api/v1/clusters/{self.rng.choice(self.member.org.churn)}/deployments"
        response = await tally.call("create", self.client.post(path, json=body))
        if response is not None and response.status_code == 201:
            self.member.add(response.json())

    async def end(self, tally: Tally, action: str) -> None:
        """Complete one of the own deployments last seen running (it may have been evicted
        since: 409), or cancel any own one that has not ended (it may have been completed)."""
        member = self.member
        candidates = member.running if action == "complete" and member.running else None
        candidates = candidates or member.deployments
        if not candidates:
            await self.create(tally)
            return
        target = self.rng.choice(candidates)
        response = await tally.call(
            action, self.client.post(f"/api/v1/deployments/{target}/{action}")
        )
        if response is None:
            return
        if response.status_code == 200 or action == "cancel":  # 409 to cancel: it has ended
            member.deployments = [d for d in member.deployments if d != target]
        member.running = [d for d in member.running if d != target]

    def _predict(self, headers: dict[str, str]) -> Awaitable[httpx.Response]:
        path = f"/api/v1/deployments/{self.member.org.serving}/predict"
        body = {"input": f"drill {self.rng.randrange(10**6)}"}
        return self.client.post(path, json=body, headers=headers)

    async def predict_sync(self, tally: Tally) -> None:
        await tally.call("predict_sync", self._predict({}))

    async def predict_async(self, tally: Tally) -> None:
        response = await tally.call("predict_async", self._predict({"Async-Mode": "true"}))
        if response is not None and response.status_code == 202:
            self.member.predictions.append(response.json()["prediction_id"])

    async def poll(self, tally: Tally) -> None:
        if not self.member.predictions:
            await self.listing(tally)
            return
        target = self.rng.choice(self.member.predictions[-5:])
        await tally.call("poll", self.client.get(f"/api/v1/predictions/{target}"))

    async def listing(self, tally: Tally) -> None:
        org = self.member.org
        path = self.rng.choice(
            [
                f"/organizations/{org.id}/deployments?limit=20",
                f"/clusters/{self.rng.choice(org.churn)}/deployments?limit=20",
                f"/deployments/{org.serving}/predictions?limit=20",
                "/auth/me",
            ]
        )
        await tally.call("list", self.client.get(f"/api/v1{path}"))
