"""Defects found by probing the running service: deeply nested bodies, bodiless form posts, the
published schema of resources, 405's `Allow`, HEAD on the probes, echoed values in errors,
production secrets and numbers more precise than a float."""

import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from app.core.config import Settings
from app.core.middleware import MAX_BODY_DEPTH
from app.schemas.common import NAME_PATTERN, Name
from app.schemas.organization import OrganizationIn
from tests.support.api import Org, User, World, assert_error

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


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


def test_the_lone_surrogate_check_walks_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError):
        OrganizationIn.model_validate({"name": deep, "other": [[["\ud800"]]]})


# --- 2. a form with an empty body acts with nobody's consent ------------------------------------


@pytest.fixture
async def running(world: World) -> tuple[Org, User, str]:
    admin = await world.user()
    org = await world.org(admin)
    cluster_id = await world.cluster(org)
    deployment = await world.deployment(admin, cluster_id)
    assert deployment["status"] == "running"
    return org, admin, deployment["id"]


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


# --- 3. the published schema of resources and names ---------------------------------------------


def walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    stack = [(path, node)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            yield where, item
            stack.extend((f"{where}/{key}", value) for key, value in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}/{i}", value) for i, value in enumerate(item))


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_resources_are_published_as_bounded_json_numbers(spec: dict[str, Any]) -> None:
    for where, node in walk(spec):
        if where.endswith("/properties") or where.endswith("/examples"):
            continue
        assert not {"ge", "le", "gt", "lt", "decimal_places", "max_digits"} & set(node), where
    properties = spec["components"]["schemas"]["ResourcesIn"]["properties"]
    for name, maximum in (("cpu", 100_000), ("ram_gb", 1_000_000)):
        schema = properties[name]
        assert "anyOf" not in schema, schema
        assert schema["type"] == "number"
        assert (schema["minimum"], schema["maximum"], schema["multipleOf"]) == (0, maximum, 0.001)
        assert "at most 3 decimals" in schema["description"]
    gpu = properties["gpu"]
    assert (gpu["type"], gpu["minimum"], gpu["maximum"]) == ("integer", 0, 1024)


def test_names_and_nonzero_deployments_are_published(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for model in ("OrganizationIn", "ClusterIn", "DeploymentIn"):
        name = schemas[model]["properties"]["name"]
        assert name["minLength"] == 1 and "maxLength" not in name, model  # trimmed first
        pattern = name["pattern"]
        validator = jsonschema.Draft202012Validator(name)
        assert validator.is_valid("Acme ML") and validator.is_valid("  é\n"), pattern
        assert validator.is_valid(f" {'x' * 100}\t") and not validator.is_valid("x" * 101)
        for bad in ("tab\there", "nul\x00", "del\x7f", "c1\x85x", "   ", ""):
            assert not validator.is_valid(bad), (model, bad)
    resources = schemas["DeploymentIn"]["properties"]["resources"]
    nonzero = jsonschema.Draft202012Validator({"anyOf": resources["anyOf"]})
    assert nonzero.is_valid({"cpu": 0, "ram_gb": 0, "gpu": 1})
    assert nonzero.is_valid({"cpu": 0.5, "ram_gb": 0, "gpu": 0})
    assert not nonzero.is_valid({"cpu": 0, "ram_gb": 0, "gpu": 0})
    assert "all zero" in resources["description"].lower()


_NAME_ALPHABET = st.sampled_from(
    [" ", "\t", "\n", "\x1c", "\x85", "\xa0", "\x00", "\x7f", "a", "é"]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_NAME_ALPHABET, max_size=110).map("".join) | st.text(max_size=110))
def test_the_published_name_pattern_admits_every_name_the_validator_accepts(text: str) -> None:
    """Schema-valid is a superset of accepted (a fuzzer's "schema-violating request accepted"),
    and here the two are the same set."""
    try:
        TypeAdapter(Name).validate_python(text)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.fullmatch(NAME_PATTERN, text)), repr(text)


def test_every_component_schema_is_valid_json_schema(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    for name, schema in spec["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{name}: {exc.message}")
    registry_schema = {"$defs": spec["components"]["schemas"]}
    jsonschema.Draft202012Validator.check_schema(registry_schema)


# --- 4. 405 lists every method of the path; HEAD on the probes ----------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/v1/organizations", {"GET", "POST"}),
        (
            "PUT",
            "/api/v1/clusters/0b8f9a3e-6f1d-4b8e-9a53-2f0c8f4b1c2d",
            {"GET", "PATCH", "DELETE"},
        ),
        ("PUT", "/api/v1/organizations/x/members/y", {"PATCH", "DELETE"}),
        ("DELETE", "/api/v1/clusters/x/deployments", {"GET", "POST"}),
        ("POST", "/health", {"GET", "HEAD"}),
        # The join route's path, not an organization whose id would be "join".
        ("OPTIONS", "/api/v1/organizations/join", {"POST"}),
    ],
)
async def test_405_allows_every_method_of_the_path(
    world: World, method: str, path: str, allowed: set[str]
) -> None:
    user = await world.user()
    response = await user.client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_head_on_the_probes_answers_like_get_without_a_body(
    client: httpx.AsyncClient, path: str
) -> None:
    get = await client.get(path)
    head = await client.head(path)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["X-Content-Type-Options"] == "nosniff"


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


# --- 6. production secrets; numbers parsed as sent ----------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 32,  # 32 characters, one of them
        "abababababababababababababababab",  # two
        "é" * 15 + "abc",  # 18 characters in 33 bytes, but 4 distinct
    ],
)
def test_production_refuses_keys_with_little_material(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=secret)  # type: ignore[call-arg]


def test_production_counts_bytes_of_key_material() -> None:
    multibyte = "éàüöçñßø" * 2  # 16 characters, 32 bytes, 8 distinct
    assert len(multibyte.encode()) == 32
    kept = Settings(_env_file=None, environment="production", secret_key=multibyte)  # type: ignore[call-arg]
    assert kept.secret_key == multibyte


@pytest.mark.parametrize(
    ("number", "accepted"),
    [
        (b"0.1000000000000000000000000000000000001", False),
        (b"0.30000000000000001", False),
        (b"0.1", True),
        (b"1e-3", True),
        (b"2.5E0", True),
        (b"1e400", False),
        (b"-1e400", False),
        (b"1e-400", False),
        (b"NaN", False),
        (b"Infinity", False),
        (b"1E+999999999", False),
        (b"1E-999999999", False),
    ],
)
async def test_resource_numbers_are_read_exactly_as_sent(
    world: World, running: tuple[Org, User, str], number: bytes, accepted: bool
) -> None:
    org, admin, _ = running
    body = b'{"name": "n", "resources": {"cpu": ' + number + b', "ram_gb": 1, "gpu": 0}}'
    cluster = await admin.client.post(
        f"/api/v1/organizations/{org.id}/clusters", content=body, headers=JSON
    )
    if accepted:
        assert cluster.status_code == 201, cluster.text
        return
    cluster_id = await world.cluster(org, cpu=8)
    deployment = await admin.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments", content=body, headers=JSON
    )
    for response in (cluster, deployment):
        refused = assert_error(response, 422, "validation_error")
        assert [f["field"] for f in refused["fields"]] == ["resources.cpu"], refused


async def test_bodies_in_utf16_are_refused_as_not_utf8(client: httpx.AsyncClient) -> None:
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        body = '{"username": "ada", "password": "x"}'.encode(encoding)
        response = await client.post("/api/v1/auth/login", content=body, headers=JSON)
        [field] = assert_error(response, 422, "validation_error")["fields"]
        assert field["field"] == "body", encoding
