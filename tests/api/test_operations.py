"""Health, readiness and the published API description."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from app.db.base import utcnow
from app.models.worker import WorkerHeartbeat
from app.services import worker_heartbeats
from tests.support.api import AppFactory, ClientFactory


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_schema_is_at_head_and_a_worker_is_alive(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await worker_heartbeats.beat(app.state.sessionmaker, "host:1:a", None, utcnow())
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "workers_alive": 1}


async def test_not_ready_without_a_live_worker_when_none_runs_in_process(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/ready")  # WORKER_IN_PROCESS=false in these tests
    assert response.status_code == 503
    assert response.json()["workers_alive"] == 0
    assert "mlops worker" in response.json()["reason"]
    # A heartbeat older than the liveness window is a dead worker.
    stale = utcnow() - worker_heartbeats.ALIVE_WITHIN - timedelta(seconds=1)
    await worker_heartbeats.beat(app.state.sessionmaker, "host:2:b", None, stale)
    async with app.state.sessionmaker() as db:
        await db.execute(update(WorkerHeartbeat).values(last_seen_at=stale))
        await db.commit()
    assert (await client.get("/ready")).status_code == 503


async def test_ready_with_the_worker_in_the_process(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    live = app_factory(worker_in_process=True)
    async with LifespanManager(live):
        await live.state.worker_start  # it starts once the schema is known to be at head
        response = await client_factory(live).get("/ready")
    assert response.status_code == 200
    assert response.json()["workers_alive"] >= 1


async def test_not_ready_without_migrations(
    app_factory: AppFactory, client_factory: ClientFactory, tmp_path: Path
) -> None:
    client = client_factory(app_factory(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["reason"]


async def test_not_ready_when_the_database_is_down(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(database_url="postgresql://postgres@127.0.0.1:1/none"))
    response = await client.get("/ready")
    assert response.status_code == 503
    assert "database" in response.json()["reason"]


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/redoc")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][name]
    if schema.get("type") == "array":
        return _resolve(schema["items"], spec)
    return schema


def test_every_operation_has_a_tag_a_summary_and_examples(app: FastAPI) -> None:
    spec = app.openapi()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation.get("tags"), where
            assert operation.get("summary"), where
            body = operation.get("requestBody")
            if body:
                schema = _resolve(body["content"]["application/json"]["schema"], spec)
                assert schema.get("examples"), f"{where}: request example"
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if not content or not status.startswith("2"):
                    continue
                schema = _resolve(content.get("schema", {}), spec)
                assert schema.get("examples") or content.get("example"), (
                    f"{where}: {status} example"
                )


@pytest.mark.parametrize("status", ["401", "404", "409", "422"])
def test_error_responses_document_the_error_body(app: FastAPI, status: str) -> None:
    spec = app.openapi()
    documented = [
        (path, op["responses"][status])
        for path, item in spec["paths"].items()
        for op in item.values()
        if status in op["responses"]
    ]
    assert documented
    for path, response in documented:
        schema = _resolve(response["content"]["application/json"]["schema"], spec)
        # The classic API's `{"error"}` bodies (tests/api/test_docs_offline.py, CLASSIC_ERRORS).
        expected = {"error"} if schema.get("title") == "ClassicErrorOut" else {"error", "code"}
        assert expected <= set(schema["properties"]), path


async def test_metrics_answer_without_the_database_and_leave_out_what_it_holds(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    client = client_factory(app_factory(database_url="postgresql://postgres@127.0.0.1:1/none"))
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "http_requests_total" in response.text
    # Absent rather than stale: the deployment and queue gauges are read from the database.
    assert "mlops_deployments" not in response.text
    assert "mlops_prediction_queue_depth" not in response.text
