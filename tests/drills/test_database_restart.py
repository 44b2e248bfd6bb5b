"""Drill: the database restarts under traffic. On a throwaway PostgreSQL cluster of the test's own
(initdb and pg_ctl from the machine's PostgreSQL, its own port; never the shared server on 5432):
`/ready` goes 503 and back to 200, requests meanwhile get the contract's 503 body, the API and the
worker recover without a restart, their LISTEN connections come back, and no prediction accepted
before the outage is lost or doubled."""

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.db.migrations import upgrade_to_head
from tests.support.api import PASSWORD, assert_error
from tests.support.processes import free_port, service_env, start_api, start_worker, stop

PREDICTIONS = 30
OUTAGE_SECONDS = 3.0


def postgres_binary(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    assert found, f"{name} not found: the PostgreSQL server package provides it"
    return str(found[-1])


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test's own, run as the `postgres` user."""

    directory: Path
    port: int

    def ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [postgres_binary("pg_ctl"), "-D", str(self.directory / "data"), "-w"]
        command += ["-o", options, "-l", str(self.directory / "server.log"), *args]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def throwaway_postgres() -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="mlops-drill-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    cluster = Cluster(directory, free_port())
    initdb = [postgres_binary("initdb"), "-D", str(directory / "data"), "-U", "postgres"]
    initdb += ["--auth=trust", "-E", "UTF8", "--no-sync"]
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *initdb], check=True, capture_output=True, timeout=120
    )
    cluster.ctl("start")
    try:
        yield cluster
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                postgres_binary("pg_ctl"),
                "-D",
                str(directory / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(directory, ignore_errors=True)


async def sign_up(base_url: str) -> tuple[httpx.AsyncClient, dict[str, Any]]:
    client = httpx.AsyncClient(base_url=base_url, timeout=30)
    user = {"username": "drill", "email": "drill@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/register", json=user)).status_code == 201
    login = {"username": "drill", "password": PASSWORD}
    assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
    org = (await client.post("/api/v1/organizations", json={"name": "Drill"})).json()
    cluster = await client.post(
        f"/api/v1/organizations/{org['id']}/clusters",
        json={"name": "pool", "capacity": {"cpu": 4, "ram_gb": 4, "gpu": 0}},
    )
    deployment = await client.post(
        f"/api/v1/clusters/{cluster.json()['id']}/deployments",
        json={"name": "echo", "model": "mock", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}},
    )
    assert deployment.json()["status"] == "running", deployment.text
    return client, deployment.json()


def listening(cluster: Cluster, database: str) -> int:
    """Backends of the database whose last statement was LISTEN: the notifiers' connections."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


async def done_notifications(client: httpx.AsyncClient) -> float:
    """`prediction_done` notifications the API's processes have received (summed over them)."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith('mlops_notifications_received_total{channel="prediction_done"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_for(predicate: Any, within: float, what: str) -> float:
    start = time.monotonic()
    while not await predicate():
        assert time.monotonic() - start < within, f"{what} within {within} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - start


def test_the_service_rides_out_a_database_restart(
    throwaway_postgres: Cluster, tmp_path: Path
) -> None:
    cluster = throwaway_postgres
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE mlops")
    database_url = cluster.url("mlops")
    upgrade_to_head(database_url)
    env = service_env(
        database_url,
        WORKER_IN_PROCESS="false",
        MOCK_DELAY_MIN="0.5",
        MOCK_DELAY_MAX="1.5",
        DB_POOL_SIZE="4",
        DB_MAX_OVERFLOW="2",
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    processes = [start_api(env, port, tmp_path / "api.log", workers=2)]
    processes.append(start_worker(env, tmp_path / "worker.log"))
    try:
        asyncio.run(drill(cluster, base_url, database_url, tmp_path))
    finally:
        for process in reversed(processes):
            stop(process)
    for log in tmp_path.glob("*.log"):  # an outage is a warning line, not a traceback per request
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


async def drill(cluster: Cluster, base_url: str, database_url: str, logs: Path) -> None:
    client, deployment = await sign_up(base_url)
    predict = f"/api/v1/deployments/{deployment['id']}/predict"

    async def ready() -> bool:
        return (await client.get("/ready")).status_code == 200

    await wait_for(ready, 30, "a worker heartbeat")
    accepted = []
    for i in range(PREDICTIONS):
        response = await client.post(predict, json={"input": f"x{i}"}, headers={"Async-Mode": "1"})
        assert response.status_code == 202, response.text
        accepted.append(response.json()["prediction_id"])

    cluster.ctl("stop", "-m", "fast")
    down_since = time.monotonic()
    during = []
    while time.monotonic() - down_since < OUTAGE_SECONDS:
        during.append(await client.get("/ready"))
        during.append(await client.get("/api/v1/auth/me"))
        during.append(await client.post(predict, json={"input": "down"}))
        await asyncio.sleep(0.3)
    cluster.ctl("start")
    up_at = time.monotonic()
    recovery = await wait_for(ready, 60, "/ready back to 200")

    for response in during:
        assert response.status_code == 503, (response.request.url, response.text)
        if response.request.url.path != "/ready":
            assert_error(response, 503, "database_unavailable")
        assert "Traceback" not in response.text

    async def all_finished() -> bool:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT status, attempts, output FROM predictions WHERE id = ANY(%s::uuid[])",
                (accepted,),
            ).fetchall()
        return len(rows) == PREDICTIONS and all(r[0] in ("completed", "failed") for r in rows)

    await wait_for(all_finished, 60, "every prediction accepted before the outage finished")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, attempts, output FROM predictions WHERE id = ANY(%s::uuid[])",
            (accepted,),
        ).fetchall()
    assert {row[0] for row in rows} == {"completed"}, "nothing accepted was lost"
    assert all(row[1] <= 2 and row[2] for row in rows), "nothing ran more than its retry"

    async def relistening() -> bool:
        return listening(cluster, "mlops") >= 3  # two API processes and the worker

    await wait_for(relistening, 30, "LISTEN connections re-established")
    woken_before = await done_notifications(client)
    after = await client.post(predict, json={"input": "after"})
    assert after.status_code == 200, after.text
    # The API's listeners received the worker's NOTIFY for it: the caller was woken by the
    # notification, not only by the poll that backs it up.
    assert await done_notifications(client) > woken_before
    await client.aclose()
    print(
        f"database restart drill: outage {OUTAGE_SECONDS:.1f} s, {len(during)} requests during it "
        f"all 503, /ready back {recovery:.2f} s after the restart "
        f"({time.monotonic() - up_at:.1f} s to full recovery), {PREDICTIONS} predictions kept"
    )
