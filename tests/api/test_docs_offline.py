"""The interactive documentation and the schema behind it: /docs and /redoc load only what the
service itself serves (no CDN, no web font), and /openapi.json says, per operation, which session,
headers and error codes to expect. tests/browser renders both pages in Chromium, offline."""

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.openapi import REDOC_VERSION, STATIC_DIR, STATIC_FILES, SWAGGER_UI_VERSION
from app.schemas.common import ERROR_CODES, ERROR_CODES_KEY, error_responses
from tests.api.test_access import PERSON_ONLY
from tests.support.api import AppFactory, ClientFactory, assert_error
from tests.support.deploy import ROOT

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
}
PREDICT = ("POST", "/api/v1/deployments/{deployment_id}/predict")
Operation = tuple[str, str, dict[str, Any]]  # method, path, the operation object


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def codes_by_status(operation: dict[str, Any]) -> dict[int, set[str]]:
    return {
        int(status): set(response[ERROR_CODES_KEY])
        for status, response in operation["responses"].items()
        if ERROR_CODES_KEY in response
    }


def resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict), ref
    return node


# The pages


def local_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(
        r"url: '([^']+)'", html
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_files_the_service_serves(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html, "the page names another host"
    assert "fonts.googleapis" not in html
    assets = local_assets(html)
    assert "/openapi.json" in assets
    assert any(url.startswith("/static/") and ".js" in url for url in assets)
    for url in assets:
        assert url.startswith("/"), url
        loaded = await client.get(url)  # no cookie: the pages and their files are public
        assert loaded.status_code == 200, url
        assert loaded.content, url


async def test_static_files_are_the_vendored_ones_with_a_long_cache_life(
    client: httpx.AsyncClient,
) -> None:
    for url_path, relative in STATIC_FILES.items():
        response = await client.get(url_path)
        assert response.status_code == 200, url_path
        assert "max-age=" in response.headers["cache-control"]
        on_disk = (STATIC_DIR / relative).read_bytes()
        if relative.startswith("redoc/"):
            # Only the footer logo's address differs (see `_REDOC_LOGO`): nothing from a CDN.
            assert b"cdn.redoc.ly" in on_disk and b"cdn.redoc.ly" not in response.content
            assert len(response.content) < len(on_disk)
        else:
            assert response.content == on_disk, url_path
    css = await client.get("/static/swagger-ui/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_anything_else_under_static_is_a_plain_404(client: httpx.AsyncClient) -> None:
    for path in ["/static/", "/static/swagger-ui/LICENSE", "/static/redoc/redoc.standalone.js.map"]:
        assert_error(await client.get(path), 404, "not_found")


async def test_the_pages_and_their_files_are_never_rate_limited(
    app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    limited = app_factory(rate_limit_enabled=True, rate_limit_default="2/minute")
    client = client_factory(limited)
    for _ in range(5):
        for path in ["/docs", "/redoc", "/openapi.json", *STATIC_FILES]:
            assert (await client.get(path)).status_code == 200, path
    # ... while the API itself is.
    statuses = [(await client.get("/api/v1/models")).status_code for _ in range(3)]
    assert statuses[-1] == 429


def test_the_vendored_versions_are_the_documented_ones() -> None:
    readme = (STATIC_DIR / "README.md").read_text()
    assert f"`swagger-ui-dist` {SWAGGER_UI_VERSION}" in readme
    assert f"`redoc` {REDOC_VERSION}" in readme
    for folder in ["swagger-ui", "redoc"]:
        assert (STATIC_DIR / folder / "LICENSE").read_text().strip(), folder
    assert "Apache License" in (STATIC_DIR / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (STATIC_DIR / "redoc" / "LICENSE").read_text()


# The schema: errors


# The classic API's own error bodies, `{"error": "..."}` alone (app/schemas/classic.py).
CLASSIC_ERRORS = {
    ("GET", "/predict/{prediction_id}", "400"),
    ("GET", "/predict/{prediction_id}", "404"),
}


def test_every_error_response_names_the_codes_it_can_carry(app: FastAPI) -> None:
    spec = app.openapi()
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            where = f"{method} {path} {status}"
            if int(status) < 400 or (method, path) == ("GET", "/ready"):
                continue  # /ready's 503 is the probe's answer, not an error body
            if (method, path, status) in CLASSIC_ERRORS:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ClassicErrorOut"}, where
                continue
            codes = response.get(ERROR_CODES_KEY)
            assert codes, f"{where}: no error code listed"
            for code in codes:
                assert ERROR_CODES[code][0] == int(status), f"{where}: {code}"
                assert f"`{code}`" in response["description"], where
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, where
            examples = response["content"]["application/json"]["examples"]
            assert {example["value"]["code"] for example in examples.values()} == set(codes)


def test_routes_name_codes_that_exist() -> None:
    with pytest.raises(ValueError, match="not an error code"):
        error_responses("cluster_not_fund")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        (
            *PREDICT,
            {
                401: {"not_authenticated"},
                403: {"forbidden", "cross_site_request"},
                404: {"deployment_not_found"},
                409: {"deployment_not_running", "idempotency_key_reused", "prediction_cancelled"},
                413: {"payload_too_large"},
                415: {"unsupported_media_type"},
                422: {"validation_error", "callback_url_refused"},
                429: {"rate_limited"},
                502: {"prediction_failed"},
                503: {"model_unavailable", "no_worker", "database_unavailable"},
                504: {"prediction_expired"},
            },
        ),
        (
            "POST",
            "/api/v1/clusters/{cluster_id}/deployments",
            {
                401: {"not_authenticated"},
                403: {"forbidden", "cross_site_request"},
                404: {"cluster_not_found"},
                413: {"payload_too_large"},
                415: {"unsupported_media_type"},
                422: {
                    "exceeds_cluster_capacity",
                    "unknown_dependency",
                    "unknown_model",
                    "validation_error",
                    "callback_url_refused",
                },
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        (
            "PATCH",
            "/api/v1/clusters/{cluster_id}",
            {
                401: {"not_authenticated"},
                403: {"forbidden", "cross_site_request"},
                404: {"cluster_not_found"},
                409: {"capacity_below_allocated", "cluster_name_taken"},
                413: {"payload_too_large"},
                415: {"unsupported_media_type"},
                422: {"unknown_strategy", "validation_error"},
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        (
            "GET",
            "/api/v1/predictions/{prediction_id}",
            {
                400: {"prediction_pending"},
                401: {"not_authenticated"},
                404: {"prediction_not_found"},
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        (
            "DELETE",
            "/api/v1/organizations/{org_id}/members/{user_id}",
            {
                401: {"not_authenticated"},
                403: {"forbidden", "cross_site_request"},
                404: {"organization_not_found", "member_not_found"},
                409: {"last_admin"},
                415: {"unsupported_media_type"},
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {
                401: {"invalid_credentials"},
                403: {"cross_site_request"},
                413: {"payload_too_large"},
                415: {"unsupported_media_type"},
                422: {"validation_error"},
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        (
            "GET",
            "/api/v1/clusters/{cluster_id}",
            {
                401: {"not_authenticated"},
                404: {"cluster_not_found"},
                429: {"rate_limited"},
                503: {"database_unavailable"},
            },
        ),
        ("GET", "/health", {}),
    ],
)
def test_key_routes_list_exactly_their_codes(
    app: FastAPI, method: str, path: str, expected: dict[int, set[str]]
) -> None:
    operation = app.openapi()["paths"][path][method.lower()]
    assert codes_by_status(operation) == expected


def test_session_and_rate_limit_codes_are_listed_where_they_apply(app: FastAPI) -> None:
    for method, path, operation in operations(app.openapi()):
        codes = codes_by_status(operation)
        signed_in = "security" in operation
        assert ("not_authenticated" in codes.get(401, set())) == signed_in, (method, path)
        if path.startswith("/api/v1/"):
            # Every API route counts against the default limit, public ones by address.
            assert codes[429] == {"rate_limited"}, (method, path)
            retry_after = operation["responses"]["429"]["headers"]["Retry-After"]
            assert retry_after == {"$ref": "#/components/headers/Retry-After"}


def test_the_documented_codes_are_the_ones_of_the_reference(app: FastAPI) -> None:
    """docs/API.md's table "Every error code" and `ERROR_CODES` agree on each code's status (the
    nginx-only codes are not the app's)."""
    text = (ROOT / "docs" / "API.md").read_text()
    table = text.split("### Every error code", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| (\d{3}) \| (.+?) \|", table, flags=re.MULTILINE)
    assert rows
    for status, cell in rows:
        for code in re.findall(r"`(\w+)`", cell):
            if code in {"upstream_unavailable", "upstream_timeout"}:
                continue
            assert ERROR_CODES[code][0] == int(status), code


# The schema: session, headers, fields


def test_the_session_cookie_and_api_keys_are_the_security_schemes_of_signed_in_operations(
    app_factory: AppFactory,
) -> None:
    spec = app_factory(session_cookie_name="mlops_sid").openapi()
    scheme = spec["components"]["securitySchemes"]["sessionCookie"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "cookie", "mlops_sid")
    assert "POST /api/v1/auth/login" in scheme["description"]
    for method, path, operation in operations(spec):
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
        elif (method, path) in PERSON_ONLY:
            assert operation["security"] == [{"sessionCookie": []}], (method, path)
        else:  # either credential
            assert operation["security"] == [{"sessionCookie": []}, {"apiKey": []}], (method, path)
    bearer = spec["components"]["securitySchemes"]["apiKey"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert "security" not in spec  # no global requirement: the public routes stay public


def test_x_request_id_is_documented_in_and_out_of_every_operation(app: FastAPI) -> None:
    spec = app.openapi()
    parameter = resolve(spec, "#/components/parameters/X-Request-ID")
    assert (parameter["in"], parameter["required"]) == ("header", False)
    assert "128" in parameter["description"]
    for method, path, operation in operations(spec):
        refs = [p.get("$ref") for p in operation["parameters"]]
        assert "#/components/parameters/X-Request-ID" in refs, (method, path)
        for status, response in operation["responses"].items():
            header = response["headers"]["X-Request-ID"]
            assert resolve(spec, header["$ref"])["schema"] == {"type": "string"}, (path, status)


def test_paged_lists_document_x_total_count(app: FastAPI) -> None:
    paged = 0
    for method, path, operation in operations(app.openapi()):
        if any(p.get("name") == "limit" for p in operation["parameters"]):
            paged += 1
            assert "X-Total-Count" in operation["responses"]["200"]["headers"], (method, path)
    assert paged >= 7


def test_the_predict_headers_are_described(app: FastAPI) -> None:
    operation = app.openapi()["paths"][PREDICT[1]]["post"]
    parameters = [p for p in operation["parameters"] if "name" in p]  # not the $refs
    described = {p["name"].lower(): p.get("description", "") for p in parameters}
    assert all(word in described["async-mode"] for word in ["`yes`", "`off`", "422"])
    assert "respond-async" in described["prefer"]
    assert all(word in described["idempotency-key"] for word in ["255", "24", "caller"])
    assert "Location" in operation["responses"]["202"]["headers"]


def test_paths_ids_cannot_be_invalid_so_they_have_no_422(app: FastAPI) -> None:
    """FastAPI adds a 422 to any operation with parameters; a path id is never invalid (an unknown
    id is 404), so only bodies, queries and headers keep one."""
    for method, path, operation in operations(app.openapi()):
        has_input = "requestBody" in operation or any(
            p.get("in") in ("query", "header") for p in operation["parameters"] if "in" in p
        )
        assert ("422" in operation["responses"]) == has_input, (method, path)


def test_every_reference_resolves(app: FastAPI) -> None:
    spec = app.openapi()

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(spec)):
        resolve(spec, ref)


Described = Callable[[str, str], str]


@pytest.fixture
def described(app: FastAPI) -> Described:
    schemas = app.openapi()["components"]["schemas"]

    def description(model: str, field: str) -> str:
        text: str = schemas[model]["properties"][field].get("description", "")
        return text

    return description


def test_deployment_fields_say_what_they_mean(app: FastAPI, described: Described) -> None:
    schema = app.openapi()["components"]["schemas"]["DeploymentIn"]
    priority = schema["properties"]["priority"]
    assert (priority["minimum"], priority["maximum"]) == (0, 1000)
    assert "higher wins" in described("DeploymentIn", "priority")
    assert "`never`" in described("DeploymentIn", "preemption_policy")
    assert "unknown_model" in described("DeploymentIn", "model")
    assert "completed" in described("DeploymentIn", "depends_on")
    for field in ["cpu", "ram_gb", "gpu"]:
        assert described("ResourcesIn", field), field
    # Swagger's "Try it out" creates a deployment of the model that always serves.
    assert schema["examples"][0]["model"] == "mock"
