"""Scheduling insight under concurrency, on PostgreSQL with real processes: two sweepers at once
complete each run once, dry runs racing real creations write nothing and answer consistently,
and on many random states a dry run answers exactly what the creation then does."""

import asyncio
import multiprocessing
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.db.session import create_engine, create_sessionmaker
from app.services import runtime_sweeper
from tests.support.api import World
from tests.support.books import check_books
from tests.support.processes import free_port, service_env, start_api, stop

LATER = datetime.now(UTC) + timedelta(hours=1)


async def _sweep_once(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    try:
        swept = await runtime_sweeper.sweep(create_sessionmaker(engine), now=LATER)
        return swept.completed, swept.clusters_rescheduled
    finally:
        await engine.dispose()


def _sweeper_process(database_url: str) -> tuple[int, int]:
    return asyncio.run(_sweep_once(database_url))


async def test_two_sweepers_at_once_complete_each_run_once(world: World, postgres_url: str) -> None:
    admin = await world.user()
    org = await world.org(admin)
    clusters = [await world.cluster(org, cpu=8, ram_gb=8, gpu=0) for _ in range(3)]
    timed = [
        await world.deployment(admin, cluster, cpu=1, name=f"t{i}", max_runtime_seconds=60)
        for cluster in clusters
        for i in range(6)
    ]
    assert all(d["status"] == "running" for d in timed)
    for cluster in clusters:  # a protected one and a preemptor waiting for it, per cluster
        await world.deployment(admin, cluster, cpu=2, name="shield", min_runtime_seconds=60)
        waiting = await world.deployment(admin, cluster, cpu=8, name="wait", priority=9)
        assert waiting["pending"]["reason"] == "waiting_for_protection"

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.map(_sweeper_process, [postgres_url, postgres_url])

    assert sum(completed for completed, _ in results) == len(timed)
    raw = postgres_url.replace("+psycopg", "")
    with psycopg.connect(raw) as conn:
        counts = conn.execute(
            """SELECT d.status, d.status_reason, COUNT(e.id) FILTER (WHERE e.type = 'completed')
               FROM deployments d LEFT JOIN deployment_events e ON e.deployment_id = d.id
               WHERE d.id = ANY(%s) GROUP BY d.id""",
            ([d["id"] for d in timed],),
        ).fetchall()
        waiting_now = conn.execute(
            "SELECT status FROM deployments WHERE name = 'wait' AND organization_id = %s",
            (org.id,),
        ).fetchall()
    assert counts == [("completed", "max_runtime_reached", 1)] * len(timed)
    assert waiting_now == [("running",)] * len(clusters)
    check_books(raw)


DRY, REAL = "dry", "real"


async def _fire(base_url: str, cookie: str, cluster: str, kind: str, seed: int) -> list[Any]:
    rng = random.Random(seed)
    answers: list[Any] = []
    async with httpx.AsyncClient(
        base_url=base_url, cookies={"session": cookie}, timeout=60
    ) as client:

        async def one(i: int) -> None:
            body = {
                "name": f"{kind}-{i}",
                "resources": {"cpu": rng.choice([0.5, 1, 2]), "ram_gb": 0, "gpu": 0},
                "priority": rng.randint(0, 6),
            }
            query = "?dry_run=true" if kind == DRY else ""
            response = await client.post(
                f"/api/v1/clusters/{cluster}/deployments{query}", json=body
            )
            answers.append((response.status_code, body["priority"], response.json()))

        for start in range(0, 60, 6):
            await asyncio.gather(*(one(i) for i in range(start, start + 6)))
    return answers


def _client_process(base_url: str, cookie: str, cluster: str, kind: str, seed: int) -> list[Any]:
    return asyncio.run(_fire(base_url, cookie, cluster, kind, seed))


async def test_dry_runs_racing_real_creations_write_nothing_and_agree_with_themselves(
    world: World, postgres_url: str, tmp_path: Path
) -> None:
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=6, ram_gb=4, gpu=0)
    cookie = admin.client.cookies["session"]
    port = free_port()
    log = tmp_path / "server.log"
    server = start_api(service_env(postgres_url, LOG_LEVEL="ERROR"), port, log, workers=2)
    try:
        context = multiprocessing.get_context("spawn")
        with context.Pool(2) as pool:
            dry, real = pool.starmap(
                _client_process,
                [
                    (f"http://127.0.0.1:{port}", cookie, cluster, kind, n)
                    for n, kind in enumerate([DRY, REAL])
                ],
            )
    finally:
        stop(server)
    assert {status for status, _, _ in real} == {201}
    assert {status for status, _, _ in dry} == {200}, log.read_text()[-2000:]
    for _, priority, said in dry:
        assert said["would_start"] == (said["status"] == "running")
        assert (said["queue_position"] is None) == said["would_start"]
        assert (said["pending"] is None) == said["would_start"]
        assert all(victim["priority"] < priority for victim in said["evicts"])
    raw = postgres_url.replace("+psycopg", "")
    with psycopg.connect(raw) as conn:
        names = conn.execute(
            "SELECT name FROM deployments WHERE cluster_id = %s", (cluster,)
        ).fetchall()
    assert sorted(name for (name,) in names) == sorted(f"real-{i}" for i in range(60))
    check_books(raw)


async def _statuses(world: World, admin: Any, cluster: str) -> dict[str, dict[str, Any]]:
    response = await admin.client.get(f"/api/v1/clusters/{cluster}/deployments?limit=100")
    return {d["id"]: d for d in response.json()}


async def test_a_dry_run_answers_what_the_creation_then_does_on_random_states(
    world: World,
) -> None:
    rng = random.Random(12)
    admin = await world.user()
    org = await world.org(admin)
    seen: set[str] = set()
    for state in range(25):
        cluster = await world.cluster(org, cpu=rng.choice([3, 4, 6]), ram_gb=4, gpu=1)
        for n in range(rng.randint(2, 7)):
            await world.deployment(
                admin,
                cluster,
                name=f"s{state}-{n}",
                cpu=rng.choice([0.5, 1, 2]),
                gpu=rng.choice([0, 0, 1]),
                priority=rng.randint(0, 6),
                preemption_policy=rng.choice(["preempt_lower_priority", "never"]),
                min_runtime_seconds=rng.choice([None, None, 600]),
            )
        body = {
            "name": "newcomer",
            "resources": {"cpu": rng.choice([1, 2, 3]), "ram_gb": 0, "gpu": rng.choice([0, 1])},
            "priority": rng.randint(0, 8),
        }
        url = f"/api/v1/clusters/{cluster}/deployments"
        before = await _statuses(world, admin, cluster)
        said = (await admin.client.post(f"{url}?dry_run=true", json=body)).json()
        assert await _statuses(world, admin, cluster) == before
        created = await admin.client.post(url, json=body)
        assert created.status_code == 201
        did = created.json()
        after = await _statuses(world, admin, cluster)
        evicted = [
            i
            for i, d in before.items()
            if d["status"] == "running" and after[i]["status"] == "pending"
        ]
        assert said["status"] == did["status"]
        assert said["queue_position"] == did["queue_position"]
        assert sorted(v["id"] for v in said["evicts"]) == sorted(evicted)
        assert (said["pending"] or {}).get("reason") == (did["pending"] or {}).get("reason")
        if said["pending"]:
            assert said["pending"]["missing"] == did["pending"]["missing"]
            assert said["pending"]["ahead"] == did["pending"]["ahead"]
            seen.add(said["pending"]["reason"])
        seen.update(["started"] if said["would_start"] else [])
        seen.update(["evicted"] if said["evicts"] else [])
    # The states cover every kind of answer, so the comparison above means something.
    assert {"started", "evicted", "insufficient_resources", "waiting_for_protection"} <= seen
