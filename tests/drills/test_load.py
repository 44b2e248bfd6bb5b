"""Load drill, the bounded version: 50 simulated users in 5 organizations doing mixed traffic
(sign-ins, cluster reads, creations that preempt, completions and cancellations, synchronous and
asynchronous mock predictions, polls, lists) for 20 s against `mlops serve --workers 4` and two
`mlops worker` processes on a PostgreSQL database of its own, from an httpx client in this
process. No 5xx, no status a request of its kind should not get, every accepted asynchronous
prediction completed, and every cluster's books exact afterwards.

`pytest -m stack` runs it with the other real-process tests; `pytest -s` shows the figures. The
long variant is `python -m bench.load_drill --users 50 --duration 120` (docs/BENCHMARKS.md)."""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from bench.load_drill import KINDS, drill, service_settings
from tests.support.api import check_error_shape_hook
from tests.support.books import check_books
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.processes import free_port, service_env, start_api, start_worker, stop

pytestmark = pytest.mark.stack

USERS, ORGS = 50, 5
DURATION = 20.0  # seconds of traffic
API_PROCESSES, WORKER_PROCESSES = 4, 2


@dataclass
class Topology:
    base_url: str
    database_url: str
    logs: Path


def wait_ready(base_url: str, seconds: float = 30) -> None:
    """Until /ready says a worker is alive (a synchronous predict needs one)."""
    deadline = time.monotonic() + seconds
    while httpx.get(f"{base_url}/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, httpx.get(f"{base_url}/ready", timeout=5).text
        time.sleep(0.2)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    name, database_url = create_postgres_database()
    logs = tmp_path_factory.mktemp("load")
    env = service_env(database_url, **service_settings(database_url))
    processes = []
    try:
        for i in range(WORKER_PROCESSES):
            processes.append(start_worker(env, logs / f"worker-{i}.log"))
        port = free_port()
        processes.append(start_api(env, port, logs / "api.log", workers=API_PROCESSES))
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        yield Topology(base_url, database_url, logs)
    finally:
        for process in reversed(processes):
            stop(process)
        drop_postgres_database(name)


def preemptions_in_database(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT COALESCE(SUM(preemption_count), 0) FROM deployments").fetchone()
    assert row is not None
    return int(row[0])


def test_50_users_of_mixed_traffic_get_no_5xx_and_leave_exact_books(topology: Topology) -> None:
    report = asyncio.run(
        drill(
            topology.base_url,
            users=USERS,
            orgs=ORGS,
            duration=DURATION,
            hooks=[check_error_shape_hook],  # every error in the contract's shape, no traceback
        )
    )
    print(f"\nload drill: {report.render()}")

    assert report.server_errors == 0
    assert report.unexpected == {}
    assert not report.tally.transport_errors
    assert set(report.tally.statuses) == set(KINDS), "every kind of request ran"
    accepted = report.tally.statuses["predict_async"][202]
    assert accepted > 0 and report.finished.statuses == {"completed": accepted}
    assert report.accounting == []
    check_books(topology.database_url)
    assert report.preemptions == preemptions_in_database(topology.database_url) > 0, (
        "no creation preempted: the mix proves too little"
    )
    # Some real traffic, even on a busy machine (about 1.5 requests a second a user when quiet).
    assert report.requests >= USERS * DURATION / 4
    for log in topology.logs.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
