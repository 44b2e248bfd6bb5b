"""Health, readiness and the published API description."""

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import AppFactory, ClientFactory


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_schema_is_at_head(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


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
        op["responses"][status]
        for item in spec["paths"].values()
        for op in item.values()
        if status in op["responses"]
    ]
    assert documented
    for response in documented:
        schema = _resolve(response["content"]["application/json"]["schema"], spec)
        assert {"error", "code"} <= set(schema["properties"])


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
