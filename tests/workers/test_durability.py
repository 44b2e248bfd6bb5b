"""The durable queue under real crashes and real competition, on PostgreSQL: a service killed with
SIGKILL loses no accepted prediction, and several worker processes run each prediction once."""

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.support.processes import free_port, service_env, start_api, start_worker, stop


def submit_async(base_url: str, cookie: str, deployment_id: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=base_url, cookies={"session": cookie}, timeout=30) as client:
        for i in range(count):
            response = client.post(
                f"/api/v1/deployments/{deployment_id}/predict",
                json={"input": f"text {i}"},
                headers={"Async-Mode": "true"},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["prediction_id"])
    return ids


def rows(database_url: str, ids: list[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id::text, status, attempts, output, error, input, worker_id "
            "FROM predictions WHERE id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()


def wait_all_done(database_url: str, ids: list[str], within: float) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + within
    while True:
        found = rows(database_url, ids)
        if all(row[1] in ("completed", "failed") for row in found) and len(found) == len(ids):
            return found
        assert time.monotonic() < deadline, [row[1] for row in found]
        time.sleep(0.3)


def test_sigkill_loses_no_accepted_prediction(
    world_with_data: tuple[str, str, dict[str, Any]], tmp_path: Path
) -> None:
    database_url, cookie, deployment = world_with_data
    env = service_env(
        database_url, MOCK_DELAY_MIN="1", MOCK_DELAY_MAX="2", PREDICTION_LEASE_SECONDS="2"
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_api(env, port, tmp_path / "first.log")
    try:
        ids = submit_async(base_url, cookie, deployment["id"], 50)
        time.sleep(0.5)
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        stop(server)
    states = [row[1] for row in rows(database_url, ids)]
    assert len(states) == 50, "an accepted prediction was not stored"
    assert "running" in states, "the kill should interrupt work in flight"

    restarted = start_api(env, port, tmp_path / "second.log")
    try:
        final = wait_all_done(database_url, ids, within=60)
    finally:
        stop(restarted)
    for _, status, attempts, output, error, text, _ in final:
        assert 1 <= attempts <= 2
        if status == "completed":
            assert output["input"] == text and error is None
        else:
            assert error, "a failed prediction must say why"


def test_several_workers_run_each_prediction_exactly_once(
    world_with_data: tuple[str, str, dict[str, Any]], tmp_path: Path
) -> None:
    database_url, cookie, deployment = world_with_data
    env = service_env(database_url, MOCK_DELAY_MIN="0.2", MOCK_DELAY_MAX="0.6")
    port = free_port()
    processes = [start_worker(env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        processes.append(start_api(env, port, tmp_path / "api.log"))
        ids = submit_async(f"http://127.0.0.1:{port}", cookie, deployment["id"], 500)
        final = wait_all_done(database_url, ids, within=90)
    finally:
        for process in processes:
            stop(process)
    assert [row for row in final if row[1] != "completed" or row[2] != 1] == []
    assert all(row[3]["input"] == row[5] for row in final)
    workers = {row[6] for row in final}
    assert len(workers) >= 2, f"one worker did everything: {workers}"
