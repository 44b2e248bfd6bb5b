"""After the load drill's traffic: every asynchronous prediction finished, every cluster's books
exact through the API."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bench.load_drill.scene import Member, expect


@dataclass
class Finished:
    """The accepted asynchronous predictions once the traffic is over."""

    statuses: Counter[str] = field(default_factory=Counter)  # "unfinished": still pending
    seconds: list[float] = field(default_factory=list)  # each one's created_at to completed_at
    last: datetime | None = None  # the latest completed_at


async def wait_finished(members: Sequence[Member], seconds: float) -> Finished:
    """Polls every accepted asynchronous prediction until it is done, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    finished = Finished()
    gate = asyncio.Semaphore(16)

    async def one(member: Member, prediction_id: str) -> None:
        while True:
            async with gate:
                response = await member.client.get(f"/api/v1/predictions/{prediction_id}")
            if response.status_code == 200:
                body = response.json()
                finished.statuses[body["status"]] += 1
                done = datetime.fromisoformat(body["completed_at"])
                created = datetime.fromisoformat(body["created_at"])
                finished.seconds.append((done - created).total_seconds())
                finished.last = max(finished.last or done, done)
                return
            if response.status_code != 400 or time.monotonic() > deadline:
                finished.statuses["unfinished" if response.status_code == 400 else "lost"] += 1
                return
            await asyncio.sleep(0.2)

    await asyncio.gather(*(one(m, p) for m in members for p in m.predictions))
    return finished


def thousandths(resources: dict[str, float]) -> tuple[int, int, int]:
    """Resources as the database keeps them (cpu and ram in thousandths): exact to compare."""
    cpu, ram = round(resources["cpu"] * 1000), round(resources["ram_gb"] * 1000)
    return cpu, ram, int(resources["gpu"])


async def check_accounting(admins: Sequence[Member]) -> tuple[list[str], int, int]:
    """Through the API, once the traffic has stopped: each cluster's `allocated` is exactly the
    sum of its running deployments and within its capacity, and its counts match the lists.
    Returns (what did not balance, deployments, preemptions over all of them)."""
    problems: list[str] = []
    deployments = preemptions = 0
    for admin in admins:
        client = admin.client
        for cluster_id in admin.org.clusters:
            cluster = expect(await client.get(f"/api/v1/clusters/{cluster_id}"), 200)
            path = f"/api/v1/clusters/{cluster_id}/deployments"
            running = await client.get(path, params={"status": "running", "limit": 200})
            pending = await client.get(path, params={"status": "pending", "limit": 1})
            rows = expect(running, 200)
            total = int(running.headers["X-Total-Count"])
            each = [thousandths(d["resources"]) for d in rows]
            summed = tuple(sum(r[i] for r in each) for i in range(3))
            allocated, capacity = (
                thousandths(cluster["allocated"]),
                thousandths(cluster["capacity"]),
            )
            if total > len(rows):
                problems.append(f"cluster {cluster_id}: more than 200 running, not checked")
            elif summed != allocated:
                problems.append(f"cluster {cluster_id}: allocated {allocated} != running {summed}")
            if any(a > c for a, c in zip(allocated, capacity, strict=True)):
                problems.append(f"cluster {cluster_id}: allocated {allocated} > {capacity}")
            if cluster["running_count"] != total:
                problems.append(f"cluster {cluster_id}: running_count {cluster['running_count']}")
            if cluster["pending_count"] != int(pending.headers["X-Total-Count"]):
                problems.append(f"cluster {cluster_id}: pending_count {cluster['pending_count']}")
        offset, total = 0, 1
        while offset < total:
            page = await client.get(
                f"/api/v1/organizations/{admin.org.id}/deployments",
                params={"limit": 200, "offset": offset},
            )
            rows = expect(page, 200)
            total = int(page.headers["X-Total-Count"])
            offset += len(rows) or total  # an empty page ends it
            deployments += len(rows)
            preemptions += sum(d["preemption_count"] for d in rows)
    return problems, deployments, preemptions
