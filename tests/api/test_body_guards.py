"""Guards on request bodies and their echoes, found by probing the running service: deeply nested
bodies, bodiless form posts and other sites' pages acting with the cookie, values echoed in
errors, bodies not in UTF-8."""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.core.middleware import MAX_BODY_DEPTH, nesting_exceeds
from app.schemas.organization import OrganizationIn
from tests.support.api import Org, User, World, assert_error

JSON = {"Content-Type": "application/json"}


def nested(key: str, levels: int, **rest: str) -> bytes:
    """`{"<key>": [[[...]]], ...rest}`: `levels` arrays inside the object."""
    tail = "".join(f', "{name}": "{value}"' for name, value in rest.items())
    return f'{{"{key}": '.encode() + b"[" * levels + b"]" * levels + f"{tail}}}".encode()


def assert_too_deep(response: httpx.Response) -> None:
    body = assert_error(response, 422, "validation_error")
    [field] = body["fields"]
    assert field["field"] == "body"
    assert str(MAX_BODY_DEPTH) in field["message"], field


# --- 1. deeply nested JSON: a 422 naming the depth limit, never a 500 or a logged traceback -----


@pytest.mark.parametrize("levels", [400, 1_000, 100_000])
async def test_deeply_nested_bodies_are_422_on_anonymous_routes(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, levels: int
) -> None:
    with caplog.at_level(logging.DEBUG):
        register = await client.post(
            "/api/v1/auth/register",
            content=nested("username", levels, email="a@example.com", password="pass12345"),
            headers=JSON,
        )
        login = await client.post(
            "/api/v1/auth/login", content=nested("username", levels, password="x"), headers=JSON
        )
        unclosed = await client.post(
            "/api/v1/auth/login", content=b'{"username": ' + b"[" * levels, headers=JSON
        )
    assert_too_deep(register)
    assert_too_deep(login)
    assert_too_deep(unclosed)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("levels", [400, 1_000, 100_000])
async def test_deeply_nested_bodies_are_422_on_signed_in_routes(
    world: World, caplog: pytest.LogCaptureFixture, levels: int
) -> None:
    user = await world.user()
    with caplog.at_level(logging.DEBUG):
        response = await user.client.post(
            "/api/v1/organizations", content=nested("name", levels), headers=JSON
        )
    assert_too_deep(response)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    created = await user.client.post("/api/v1/organizations", json={"name": "Acme"})
    assert created.status_code == 201, created.text


async def test_the_depth_limit_counts_objects_and_arrays_and_ignores_strings(
    world: World,
) -> None:
    user = await world.user()
    at_limit = await user.client.post(
        "/api/v1/organizations", content=nested("name", MAX_BODY_DEPTH - 1), headers=JSON
    )
    [field] = assert_error(at_limit, 422, "validation_error")["fields"]
    assert field["field"] == "name"  # an ordinary validation error, not the depth's
    assert_too_deep(
        await user.client.post(
            "/api/v1/organizations", content=nested("name", MAX_BODY_DEPTH), headers=JSON
        )
    )
    brackets_in_a_string = {"name": "[" * 90 + '\\"{' + "]"}
    created = await user.client.post("/api/v1/organizations", json=brackets_in_a_string)
    assert created.status_code == 201, created.text


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_TRICKY_TEXT = st.text(alphabet='[]{}"\\ a', max_size=8)
_JSON = st.recursive(
    st.none() | st.integers() | _TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.integers(min_value=0, max_value=6))
def test_the_nesting_scan_agrees_with_the_parsed_depth(document: Any, limit: int) -> None:
    """Brackets, quotes and backslashes inside strings never fool the scan of the raw bytes."""
    body = json.dumps(document).encode()
    assert nesting_exceeds(body, limit) == (_depth(document) > limit), body


def test_the_lone_surrogate_check_walks_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError):
        OrganizationIn.model_validate({"name": deep, "other": [[["\ud800"]]]})


# --- 2. a form with an empty body acts with nobody's consent ------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
async def test_a_bodiless_form_post_changes_nothing(
    running: tuple[Org, User, str], content_type: str
) -> None:
    org, admin, deployment_id = running
    headers = {"Content-Type": content_type}
    for action in ("complete", "cancel"):
        refused = await admin.client.post(
            f"/api/v1/deployments/{deployment_id}/{action}", content=b"", headers=headers
        )
        assert_error(refused, 415, "unsupported_media_type")
    deployment = await admin.client.get(f"/api/v1/deployments/{deployment_id}")
    assert deployment.json()["status"] == "running"
    code = (await admin.client.get(f"/api/v1/organizations/{org.id}")).json()["invite_code"]
    rotate = await admin.client.post(
        f"/api/v1/organizations/{org.id}/invite-code", content=b"", headers=headers
    )
    assert_error(rotate, 415, "unsupported_media_type")
    after = (await admin.client.get(f"/api/v1/organizations/{org.id}")).json()["invite_code"]
    assert after == code
    logout = await admin.client.post("/api/v1/auth/logout", content=b"", headers=headers)
    assert_error(logout, 415, "unsupported_media_type")
    assert (await admin.client.get("/api/v1/auth/me")).status_code == 200


@pytest.mark.parametrize("site", ["same-site", "cross-site"])
async def test_a_browser_request_from_another_sites_page_changes_nothing(
    running: tuple[Org, User, str], site: str
) -> None:
    """`fetch(url, {method: "POST", credentials: "include", mode: "no-cors"})` from a sibling
    subdomain carries the SameSite=Lax cookie and needs no content type: Fetch Metadata tells."""
    _, admin, deployment_id = running
    other_site = {"Sec-Fetch-Site": site}
    for action in ("complete", "cancel"):
        refused = await admin.client.post(
            f"/api/v1/deployments/{deployment_id}/{action}", headers=other_site
        )
        body = assert_error(refused, 403, "cross_site_request")
        assert body["error"] == "Requests sent by another site's pages are refused."
    logout = await admin.client.post("/api/v1/auth/logout", headers=other_site)
    assert_error(logout, 403, "cross_site_request")
    reading = await admin.client.get(f"/api/v1/deployments/{deployment_id}", headers=other_site)
    assert reading.json()["status"] == "running"  # reads stay allowed: no CORS, nothing leaks
    same_origin = {"Sec-Fetch-Site": "same-origin"}  # the docs pages, a console on this origin
    completed = await admin.client.post(
        f"/api/v1/deployments/{deployment_id}/complete", headers=same_origin
    )
    assert completed.json()["status"] == "completed"
    assert (await admin.client.get("/api/v1/auth/me")).status_code == 200


async def _nothing() -> AsyncIterator[bytes]:
    for chunk in ():
        yield chunk


async def _something() -> AsyncIterator[bytes]:
    yield b"x=1"


async def test_without_a_content_type_only_an_empty_body_passes_chunked_or_not(
    running: tuple[Org, User, str],
) -> None:
    org, admin, _ = running
    path = f"/api/v1/organizations/{org.id}/invite-code"
    chunked_with_data = await admin.client.post(path, content=_something())
    assert chunked_with_data.request.headers.get("transfer-encoding") == "chunked"
    assert_error(chunked_with_data, 415, "unsupported_media_type")
    with_length = await admin.client.post(path, content=b"x=1")
    assert_error(with_length, 415, "unsupported_media_type")
    empty_chunked = await admin.client.post(path, content=_nothing())
    assert empty_chunked.request.headers.get("transfer-encoding") == "chunked"
    assert "content-type" not in empty_chunked.request.headers
    assert empty_chunked.status_code == 200, empty_chunked.text
    assert (await admin.client.post(path)).status_code == 200
    assert (await admin.client.post("/api/v1/auth/logout", content=_nothing())).status_code == 204


# --- 5. errors never echo more than a little of the input ---------------------------------------


async def test_a_huge_unknown_dependency_is_not_echoed(
    world: World, running: tuple[Org, User, str]
) -> None:
    org, admin, _ = running
    cluster_id = await world.cluster(org)
    huge = "z" * 500_000
    response = await admin.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments",
        json={"name": "d", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}, "depends_on": [huge]},
    )
    body = assert_error(response, 422, "unknown_dependency")
    assert len(response.content) < 2_000, len(response.content)
    assert body["fields"][0]["field"] == "depends_on"
    assert "zzzz" in body["error"] and "…" in body["error"]


async def test_huge_keys_and_header_values_are_not_echoed(
    running: tuple[Org, User, str],
) -> None:
    _, admin, deployment_id = running
    unknown_key = await admin.client.post("/api/v1/organizations", json={"k" * 100_000: 1})
    assert_error(unknown_key, 422, "validation_error")
    assert len(unknown_key.content) < 2_000
    async_mode = await admin.client.post(
        f"/api/v1/deployments/{deployment_id}/predict",
        json={"input": "hi"},
        headers={"Async-Mode": "m" * 50_000},
    )
    assert_error(async_mode, 422, "validation_error")
    assert len(async_mode.content) < 2_000


async def test_bodies_in_utf16_are_refused_as_not_utf8(client: httpx.AsyncClient) -> None:
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        body = '{"username": "ada", "password": "x"}'.encode(encoding)
        response = await client.post("/api/v1/auth/login", content=body, headers=JSON)
        [field] = assert_error(response, 422, "validation_error")["fields"]
        assert field["field"] == "body", encoding
