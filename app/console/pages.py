"""The web console: `/console/...` pages and their assets, served by the app itself.

Every page is the same HTML for everyone, signed in or not, whatever their role: a layout with
labelled forms and empty regions, rendered by Jinja2 from the package. The browser fills it from
the JSON API with the caller's own session cookie, and every action it offers is a call to that
API (`app/console/static/js/api.js` lists them all). So the console holds no data and enforces no
rule of its own: it can show or do nothing that the API would not let the caller see or do.

Assets are served under a path that carries a digest of their content, so that the ES modules'
relative imports stay on one version and browsers may cache them for good; nothing is loaded from
another host (the Content-Security-Policy says so to the browser too).
"""

import hashlib
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException

CONSOLE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = CONSOLE_DIR / "static"
# Pages by URL template. A page's path parameters reach its script as data attributes of <body>;
# the page's module (static/js/pages/<name>.js) does the rest.
PAGES = {
    "/console": "home",
    "/console/sign-in": "sign_in",
    "/console/register": "register",
    "/console/orgs/{org_id}": "clusters",
    "/console/orgs/{org_id}/deployments": "deployments",
    "/console/orgs/{org_id}/members": "members",
    "/console/orgs/{org_id}/api-keys": "api_keys",
    "/console/orgs/{org_id}/audit": "audit",
    "/console/clusters/{cluster_id}": "cluster",
    "/console/deployments/{deployment_id}": "deployment",
}
# No inline script or style anywhere, and nothing from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
_ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@cache
def assets() -> dict[str, Path]:
    """The files under static/, by their path relative to it: a fixed set, read once."""
    return {
        path.relative_to(ASSETS_DIR).as_posix(): path
        for path in sorted(ASSETS_DIR.rglob("*"))
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


@cache
def assets_version() -> str:
    digest = hashlib.sha256()
    for name, path in assets().items():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("app.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(page: str, params: dict[str, str]) -> str:
    template = _templates().get_template(f"{page}.html")
    return template.render(page=page, params=params, assets=f"/console/assets/{assets_version()}")


def _page_endpoint(page: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def serve(request: Request) -> HTMLResponse:
        params = {key: str(value) for key, value in request.path_params.items()}
        return HTMLResponse(render(page, params), headers=_PAGE_HEADERS)

    serve.__name__ = f"console_{page}"
    return serve


def _router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for path, page in PAGES.items():
        router.add_api_route(path, _page_endpoint(page), methods=["GET"], name=f"console:{page}")

    @router.get("/console/", name="console:slash")
    async def trailing_slash() -> RedirectResponse:
        return RedirectResponse("/console", status_code=308)

    @router.get("/console/assets/{version}/{name:path}", name="console:asset")
    async def asset(version: str, name: str) -> Response:
        path = assets().get(name)
        if version != assets_version() or path is None:
            raise HTTPException(404)
        return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_ASSET_HEADERS)

    return router


def install_console(app: FastAPI) -> None:
    app.include_router(_router())
