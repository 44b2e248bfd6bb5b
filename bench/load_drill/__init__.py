"""Load drill: simulated users doing mixed traffic against the production topology on this
machine (`mlops serve --workers 4` and two `mlops worker` processes on PostgreSQL), then checks
that nothing broke: throughput, latency per kind of request, error counts, every asynchronous
prediction finished, and every cluster's books exact.

Run from the project root: `python -m bench.load_drill [--users 50] [--orgs 5] [--duration 120]`
(`--help` lists the rest). Creates the database `mlops_bench_load_drill`, starts the workers and
the API on 127.0.0.1 with rate limits off and mock predictions of 0.05-0.3 s, and drives them from
this process (httpx on asyncio). The users are spread evenly over the organizations (the first
of each is its admin, the others join with the invite code); each organization has two small
"churn" clusters (4 cpu, 8 GiB, 1 gpu) where creations of random size and priority preempt each
other, and a "serving" cluster with one mock deployment that answers the predictions. Each user
loops until the duration is over: one request of a kind drawn by KINDS' weights, then a think time
drawn from `--think` (seconds). After the traffic: wait for every accepted asynchronous
prediction, check each cluster's books through the API (allocated = the sum of its running
deployments, within capacity; the counts match the lists) and in the database
(tests/support/books.py), and print markdown tables, with the cores each group of processes used.

tests/drills/test_load.py runs the same `drill()` for 20 s in the test suite.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.load_drill.checks import check_accounting, wait_finished
from bench.load_drill.report import Report
from bench.load_drill.scene import DB_NAME, KINDS, MOCK_DELAY, Hooks, build_org
from bench.load_drill.traffic import Tally, User

__all__ = ["DB_NAME", "KINDS", "Report", "drill", "service_settings"]


async def drill(
    base_url: str,
    *,
    users: int = 50,
    orgs: int = 5,
    duration: float = 120.0,
    think: tuple[float, float] = (0.2, 0.8),
    seed: int = 20261203,
    hooks: Hooks | None = None,
    on_traffic: Callable[[str], None] = lambda _: None,
) -> Report:
    """Builds the scene on the API at `base_url`, runs the traffic for `duration` seconds, waits
    for the asynchronous predictions, checks the books through the API: the report. `hooks`: for
    every response (the tests check the error shape); `on_traffic("start")` and `("end")` are
    called around the traffic (the benchmark reads the CPU there)."""
    hooks = hooks or []
    rng = random.Random(seed)
    tag = f"{rng.randrange(10**6):06d}"
    started = time.monotonic()
    sizes = [users // orgs + (1 if i < users % orgs else 0) for i in range(orgs)]
    built = await asyncio.gather(
        *(build_org(base_url, hooks, i, size, tag) for i, size in enumerate(sizes))
    )
    members = [member for org in built for member in org]
    setup_seconds = time.monotonic() - started
    tally = Tally()
    try:
        on_traffic("start")
        start = time.monotonic()
        deadline = start + duration
        await asyncio.gather(
            *(
                User(m, base_url, hooks, random.Random(rng.random())).run(tally, deadline, think)
                for m in members
            )
        )
        elapsed = time.monotonic() - start
        ended = datetime.now(UTC)
        on_traffic("end")
        finished = await wait_finished(members, seconds=120)
        accounting, deployments, preemptions = await check_accounting([org[0] for org in built])
    finally:
        for member in members:
            await member.client.aclose()
    return Report(
        users,
        orgs,
        duration,
        elapsed,
        setup_seconds,
        ended,
        tally,
        finished,
        accounting,
        deployments,
        preemptions,
    )


def service_settings(database_url: str) -> dict[str, str]:
    """The settings of every process of the drill (beside DATABASE_URL and SECRET_KEY)."""
    return {
        "RATE_LIMIT_ENABLED": "false",
        "WORKER_IN_PROCESS": "false",  # as in compose: only the worker processes run models
        "MOCK_DELAY_MIN": MOCK_DELAY[0],
        "MOCK_DELAY_MAX": MOCK_DELAY[1],
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "4",
        "LOG_LEVEL": "WARNING",
    }
