"""The published schema and the pages that show it.

- The schema tells the truth about errors: FastAPI's default 422 body (`detail`) is never sent by
  this API, so every 422 is documented with the contract's error body instead, and every error
  response lists the `code`s it can carry (`error_responses` in app/schemas/common.py); requests
  with a body add the edge's 413 and 415.
- The session cookie is a security scheme, required by every operation whose dependencies need a
  signed-in user, so Swagger UI's "Authorize" and the padlocks show which calls need it; an API
  key (bearer) is the alternative on every such operation but those of a person.
- `X-Request-ID` is documented on every operation, in and out; `X-Total-Count` on paged lists and
  `Retry-After` on 429s.
- `/docs` (Swagger UI) and `/redoc` (ReDoc) load their scripts and styles from files shipped in the
  package (`app/static`, see its README), never from a CDN, and no web font: they render on an
  air-gapped cluster.
"""

from collections.abc import Awaitable, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.classic import classic_caller
from app.api.deps import current_person, current_user, get_db, optional_user
from app.schemas.common import ERROR_CODES, ERROR_CODES_KEY, ErrorBody, error_responses

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
SESSION_SCHEME = "sessionCookie"
API_KEY_SCHEME = "apiKey"
_API_KEY = {
    "type": "http",
    "scheme": "bearer",
    "description": "An organization's API key (`mlops_...`), sent as `Authorization: Bearer "
    "<key>`: a service account of the key's role, inside the key's organization only. Routes "
    "that belong to a person (sessions, passwords, creating or joining organizations) refuse it.",
}
_REQUEST_ID = "X-Request-ID"
_REQUEST_ID_TEXT = (
    "Correlates a request with its log lines. Sent by the caller (1-128 characters of "
    "`[A-Za-z0-9._:-]`), it is echoed back; otherwise, or when it is not of that form, the "
    "service makes a fresh 32-character hex id. Every response carries it, errors included, and "
    "a 500's body repeats it as `request_id`."
)


def _session_scheme(cookie_name: str) -> dict[str, Any]:
    return {
        "type": "apiKey",
        "in": "cookie",
        "name": cookie_name,
        "description": (
            f"The `{cookie_name}` cookie that `POST /api/v1/auth/login` sets. It is `HttpOnly`, "
            "so no script can read it or set it, Swagger UI's included: to call the API from this "
            "page, run `POST /api/v1/auth/login` here first (Try it out). The browser keeps the "
            "cookie it answers with and sends it with every later request to this origin, which "
            "authenticates them; `POST /api/v1/auth/logout` ends the session. Outside a browser, "
            "send the cookie yourself (`curl -c jar` to log in, then `curl -b jar`)."
        ),
    }


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _walk(dependency)


def operations_depending_on(app: FastAPI, *calls: Callable[..., Any]) -> set[tuple[str, str]]:
    """(method, path) of every operation whose dependencies include one of `calls`, read from the
    routes themselves (the routers' own dependencies included)."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or context.path is None:
            continue
        if any(d.call in calls for d in _walk(context.dependant)):
            found |= {(method.lower(), context.path) for method in context.methods or ()}
    return found


def signed_in_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every operation that needs a signed-in user."""
    return operations_depending_on(app, current_user)


def _add_error(responses: dict[str, Any], code: str) -> None:
    """Declare `code` on an operation, beside the codes already declared with its status."""
    status = str(ERROR_CODES[code][0])
    listed = responses.get(status, {}).get(ERROR_CODES_KEY, [])
    if code not in listed:
        responses[status] = _error_response(*listed, code)


def _can_be_invalid(operation: dict[str, Any]) -> bool:
    """A body, a query or a header can be malformed (422); a path id cannot (unknown: 404)."""
    parameters = operation.get("parameters", [])
    return "requestBody" in operation or any(p.get("in") != "path" for p in parameters)


_UNSAFE = {"post", "put", "patch", "delete"}


def _error_response(*codes: str) -> dict[str, Any]:
    """`error_responses(*codes)`'s one entry as it appears in the schema."""
    [declared] = error_responses(*codes).values()
    media = {"schema": _ERROR_REF, **declared["content"]["application/json"]}
    return {
        "description": declared["description"],
        ERROR_CODES_KEY: declared[ERROR_CODES_KEY],
        "content": {"application/json": media},
    }


def _document(app: FastAPI, schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    cookie_name = app.state.settings.session_cookie_name
    schemes = components.setdefault("securitySchemes", {})
    schemes[SESSION_SCHEME] = _session_scheme(cookie_name)
    schemes[API_KEY_SCHEME] = _API_KEY
    components.setdefault("parameters", {})[_REQUEST_ID] = {
        "name": _REQUEST_ID,
        "in": "header",
        "required": False,
        "description": _REQUEST_ID_TEXT,
        "schema": {"type": "string"},  # any value: one not of the documented form is replaced
    }
    components.setdefault("headers", {}).update(
        {
            _REQUEST_ID: {
                "description": "This request's id: the caller's own `X-Request-ID` when it was "
                "well-formed, else a fresh one.",
                "schema": {"type": "string"},
            },
            "X-Total-Count": {
                "description": "How many rows match, over all pages.",
                "schema": {"type": "integer"},
            },
            "Retry-After": {
                "description": "Seconds until the limit lets a request through (at least 1).",
                "schema": {"type": "integer"},
            },
        }
    )
    signed_in = signed_in_operations(app)
    people_only = operations_depending_on(app, current_person)
    # The classic /predict: signed in, or (PUBLIC_PREDICT=true) anonymous as well.
    classic = operations_depending_on(app, classic_caller)
    classic_security: list[dict[str, list[str]]] = [{SESSION_SCHEME: []}, {API_KEY_SCHEME: []}]
    if app.state.settings.public_predict:
        classic_security.append({})
    # Anything that reads the session (any cookie is looked up) or opens a transaction.
    on_database = operations_depending_on(app, get_db, current_user, optional_user)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            declared = responses.get("422", {})
            if "422" in responses and ERROR_CODES_KEY not in declared:
                # FastAPI's own 422 (HTTPValidationError), added for any parameter at all.
                if _can_be_invalid(operation):
                    responses["422"] = _error_response("validation_error")
                else:
                    del responses["422"]
            if method in _UNSAFE:
                # Refused at the edge, before the route (app/core/middleware.py).
                _add_error(responses, "cross_site_request")
                _add_error(responses, "unsupported_media_type")
            if "requestBody" in operation:
                _add_error(responses, "payload_too_large")
            if (method, path) in on_database:
                _add_error(responses, "database_unavailable")
            operation["responses"] = responses = dict(sorted(responses.items()))
            if (method, path) in signed_in:
                operation["security"] = [{SESSION_SCHEME: []}]
                if (method, path) not in people_only:
                    operation["security"].append({API_KEY_SCHEME: []})
            elif (method, path) in classic:
                operation["security"] = classic_security
            parameters = operation.setdefault("parameters", [])
            parameters.append({"$ref": f"#/components/parameters/{_REQUEST_ID}"})
            paged = any(p.get("name") == "limit" for p in parameters)
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers[_REQUEST_ID] = {"$ref": f"#/components/headers/{_REQUEST_ID}"}
                if status == "200" and paged:
                    headers["X-Total-Count"] = {"$ref": "#/components/headers/X-Total-Count"}
                if status == "429":
                    headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _document(app, schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"
# The files the pages load, by URL path: a fixed set of routes, not a mounted directory, so that
# every other request under /static/ is a plain 404 `not_found` and the metrics' route label stays
# bounded. `?v=` in the pages' URLs changes with the vendored version, so the week-long cache
# lifetime never serves a stale file after an upgrade.
STATIC_FILES = {
    "/static/swagger-ui/swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
    "/static/swagger-ui/swagger-ui.css": "swagger-ui/swagger-ui.css",
    "/static/swagger-ui/favicon-32x32.png": "swagger-ui/favicon-32x32.png",
    "/static/redoc/redoc.standalone.js": "redoc/redoc.standalone.js",
}
_CACHE = {"Cache-Control": "public, max-age=604800"}
# ReDoc 2 hard-codes the logo of its "API docs by Redocly" footer on Redocly's CDN, and no option
# turns it off. The bundle is served with that address swapped for an empty one (the image then
# fails at once and ReDoc leaves it out), so the page asks nothing of another host; the file on
# disk stays byte for byte as published.
_REDOC_LOGO = (b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'"data:,"')
_SWAGGER_UI_PARAMETERS = {
    "persistAuthorization": True,
    "displayRequestDuration": True,
    "validatorUrl": None,  # no badge from the public validator
}


def install_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc`, on assets served by the app itself. Public and never rate limited
    (limits apply under /api/v1 only). Build the app with `docs_url=None, redoc_url=None`."""
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"/static/swagger-ui/favicon-32x32.png?v={SWAGGER_UI_VERSION}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"/static/swagger-ui/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
            swagger_css_url=f"/static/swagger-ui/swagger-ui.css?v={SWAGGER_UI_VERSION}",
            swagger_favicon_url=favicon,
            swagger_ui_parameters=_SWAGGER_UI_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"/static/redoc/redoc.standalone.js?v={REDOC_VERSION}",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    for url_path, relative in STATIC_FILES.items():
        app.add_api_route(
            url_path, _static_endpoint(relative), name=f"static:{relative}", include_in_schema=False
        )


def _static_endpoint(relative: str) -> Callable[[], Awaitable[Response]]:
    path = STATIC_DIR / relative
    if relative == "redoc/redoc.standalone.js":

        async def serve_redoc() -> Response:
            return Response(_redoc_bundle(), media_type="text/javascript", headers=_CACHE)

        return serve_redoc

    async def serve() -> Response:
        return FileResponse(path, headers=_CACHE)

    return serve


@cache
def _redoc_bundle() -> bytes:
    """Read on first use, not at start-up: most processes never serve the docs."""
    return (STATIC_DIR / "redoc" / "redoc.standalone.js").read_bytes().replace(*_REDOC_LOGO)
