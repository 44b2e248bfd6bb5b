"""The published contract agrees with what the service does, found by probing it: the schema of
resources and names, 405's `Allow`, HEAD on the probes, production secrets, and numbers more
precise than a float."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from app.core.config import Settings
from app.schemas.common import NAME_PATTERN, Name
from tests.support.api import Org, User, World, assert_error

JSON = {"Content-Type": "application/json"}
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
