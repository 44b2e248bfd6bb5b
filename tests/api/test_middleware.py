"""Cross-cutting behaviour: request ids, security headers, JSON-only bodies, body cap, metrics,
and the error shape for routing errors and unexpected exceptions."""

import logging

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import World, assert_error


async def test_request_id_is_generated_or_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health")
    assert len(generated.headers["X-Request-ID"]) >= 16
    echoed = await client.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert echoed.headers["X-Request-ID"] == "trace-abc.123"


@pytest.mark.parametrize("insane", ["x" * 300, "has spaces", "new\tline", "<script>"])
async def test_insane_request_ids_are_replaced(client: httpx.AsyncClient, insane: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": insane})
    assert response.headers["X-Request-ID"] != insane


async def test_security_headers_on_success_and_errors(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "X-Request-ID" in response.headers


async def test_form_post_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        data={"username": "ada", "email": "ada@example.com", "password": "password123"},
    )
    assert_error(response, 415, "unsupported_media_type")
    text_plain = await client.post(
        "/api/v1/auth/login", content=b'{"username":"a"}', headers={"Content-Type": "text/plain"}
    )
    assert_error(text_plain, 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted_and_empty_bodies_need_no_type(world: World) -> None:
    user = await world.user()
    created = await user.client.post(
        "/api/v1/organizations",
        content=b'{"name": "Acme"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 201
    rotated = await user.client.post(f"/api/v1/organizations/{created.json()['id']}/invite-code")
    assert rotated.status_code == 200
    assert (await user.client.post("/api/v1/auth/logout")).status_code == 204


async def test_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"username": "' + b"a" * (1024 * 1024 + 1) + b'"}'
    response = await client.post(
        "/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_oversize_streamed_body_without_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


async def test_malformed_json_is_422_with_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


async def test_unknown_route_and_wrong_method_use_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await client.delete("/api/v1/auth/me"), 405, "method_not_allowed")


async def test_unexpected_exceptions_become_a_generic_500(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: SELECT * FROM users")

    with caplog.at_level(logging.ERROR):
        response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "SELECT" not in response.text
    assert body["request_id"] == "req-500"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move_after_traffic_and_label_route_templates(world: World) -> None:
    user = await world.user()
    org = await world.org(user)
    labels = {"method": "GET", "route": "/api/v1/organizations/{org_id}", "status": "200"}
    before = sample((await user.client.get("/metrics")).text, "http_requests_total", labels)
    for _ in range(3):
        assert (await user.client.get(f"/api/v1/organizations/{org.id}")).status_code == 200
    text = (await user.client.get("/metrics")).text
    assert sample(text, "http_requests_total", labels) == before + 3
    assert sample(text, "http_request_duration_seconds_count", labels) >= 3
    assert f"/api/v1/organizations/{org.id}" not in text


async def test_requests_are_logged_as_json_lines_with_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        await client.get("/health", headers={"X-Request-ID": "log-me"})
    record = next(r for r in caplog.records if r.name == "app.access")
    assert record.__dict__["route"] == "/health"
    assert record.__dict__["status"] == 200
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["duration_ms"] >= 0
