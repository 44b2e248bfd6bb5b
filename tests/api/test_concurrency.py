"""Races between real processes: two uvicorn workers serve, four client processes fire creates,
completions and cancellations (some with dependencies across two clusters) at small clusters.
Afterwards every cluster's books must balance and no request may have failed with a 5xx."""

import asyncio
import multiprocessing
import random
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import World
from tests.support.books import check_books
from tests.support.processes import free_port, service_env, start_api, stop

CLIENT_PROCESSES = 4
REQUESTS_PER_PROCESS = 110
CONCURRENCY_PER_PROCESS = 12


async def _fire(base_url: str, cookie: str, clusters: list[str], seed: int) -> list[int]:
    rng = random.Random(seed)
    mine: list[str] = []
    statuses: list[int] = []
    semaphore = asyncio.Semaphore(CONCURRENCY_PER_PROCESS)
    async with httpx.AsyncClient(
        base_url=base_url, cookies={"session": cookie}, timeout=60
    ) as client:

        async def one(i: int) -> None:
            async with semaphore:
                roll = rng.random()
                if roll < 0.6 or not mine:
                    body: dict[str, Any] = {
                        "name": f"p{seed}-{i}",
                        "resources": {
                            "cpu": rng.choice([0.5, 1, 1.5, 2]),
                            "ram_gb": rng.choice([0, 1, 2]),
                            "gpu": rng.choice([0, 0, 1]),
                        },
                        "priority": rng.randint(0, 5),
                        "preemption_policy": rng.choice(["preempt_lower_priority", "never"]),
                    }
                    if mine and rng.random() < 0.3:
                        body["depends_on"] = rng.sample(mine, k=min(2, len(mine)))
                    response = await client.post(
                        f"/api/v1/clusters/{rng.choice(clusters)}/deployments", json=body
                    )
                    if response.status_code == 201:
                        mine.append(response.json()["id"])
                else:
                    action = "complete" if roll < 0.85 else "cancel"
                    target = rng.choice(mine)
                    response = await client.post(f"/api/v1/deployments/{target}/{action}")
                statuses.append(response.status_code)

        await asyncio.gather(*(one(i) for i in range(REQUESTS_PER_PROCESS)))
    return statuses


def _client_process(base_url: str, cookie: str, clusters: list[str], seed: int) -> list[int]:
    return asyncio.run(_fire(base_url, cookie, clusters, seed))


def _run_load(
    postgres_url: str, cookie: str, clusters: list[str], log_path: Path
) -> tuple[list[list[int]], str]:
    """Serve with two uvicorn workers; fire from four client processes; return their statuses."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_api(service_env(postgres_url, LOG_LEVEL="ERROR"), port, log_path, workers=2)
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(CLIENT_PROCESSES) as pool:
            results = pool.starmap(
                _client_process,
                [(base_url, cookie, clusters, seed) for seed in range(CLIENT_PROCESSES)],
            )
    finally:
        stop(server)
    return results, log_path.read_text()


async def test_concurrent_requests_from_many_processes_keep_the_books(
    world: World, postgres_url: str, tmp_path: Path
) -> None:
    admin = await world.user()
    org = await world.org(admin)
    clusters = [await world.cluster(org, cpu=4, ram_gb=4, gpu=1) for _ in range(2)]
    # Admin acts on everyone's deployments: every request is allowed, so only races can fail it.
    cookie = admin.client.cookies["session"]

    results, server_log = _run_load(postgres_url, cookie, clusters, tmp_path / "server.log")
    statuses = [status for result in results for status in result]
    assert len(statuses) == CLIENT_PROCESSES * REQUESTS_PER_PROCESS >= 400
    assert [s for s in statuses if s >= 500] == [], server_log[-3000:]
    assert {201, 200} <= set(statuses)
    assert "deadlock" not in server_log.lower()
    assert "Traceback" not in server_log
    check_books(postgres_url.replace("+psycopg", ""))
