"""The console adds no rule of its own.

Its pages are the same bytes for everyone (signed in or not, whatever the role): they hold no
data and decide nothing. Everything they show or do goes through the JSON API, by one of the calls
`app/console/static/js/api.js` declares, and each of those is a route that tests/api/test_access.py
already covers (401 for anonymous callers, 404 for outsiders, the role table for members). The
browser tests (tests/browser/test_console*.py) check that the pages send no other call."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.console.pages import PAGES, assets_version
from tests.api.test_access import PUBLIC, SCOPED, UNSCOPED, operations
from tests.support.api import World, assert_error
from tests.support.console import console_routes


def test_every_call_of_the_console_is_a_route_the_access_tests_cover(app: FastAPI) -> None:
    routes = set(console_routes().values())
    assert len(routes) == len(console_routes()), "a route is declared twice in api.js"
    assert routes <= set(operations(app)), "api.js calls a route the API does not have"
    covered = PUBLIC | UNSCOPED | set(SCOPED)
    assert sorted(routes - covered) == []


def test_the_console_routes_take_no_dependency_and_are_not_in_the_api(app: FastAPI) -> None:
    console = [
        context
        for context in iter_route_contexts(app.routes)
        if context.path is not None and context.path.startswith("/console")
    ]
    assert {context.path for context in console} >= set(PAGES)
    for context in console:
        assert isinstance(context.original_route, APIRoute)
        assert context.dependant.dependencies == [], context.path  # no session, no database
        assert context.methods == {"GET"}
    assert not [path for path in app.openapi()["paths"] if path.startswith("/console")]


def filled(template: str) -> str:
    return re.sub(r"\{\w+\}", "3f2b8c1d-2222-4e6f-9a10-7b8c9d0e1f20", template)


async def test_every_page_is_the_same_for_anyone(client: httpx.AsyncClient, world: World) -> None:
    viewer = await world.user()
    org = await world.org(viewer=viewer)
    for template in PAGES:
        answers = [
            await caller.get(filled(template))
            for caller in (client, org.admin.client, viewer.client)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200], template
        assert answers[0].text == answers[1].text == answers[2].text, template
        assert answers[0].headers["content-type"].startswith("text/html")


async def test_pages_forbid_other_origins_and_inline_scripts(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/sign-in")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text  # only <script type="module" src=...>
    assert page.headers["x-frame-options"] == "DENY"


async def test_a_path_id_is_escaped_into_the_page(client: httpx.AsyncClient) -> None:
    page = await client.get('/console/clusters/"><img src=x onerror=alert(1)>')
    assert page.status_code == 200
    assert "<img" not in page.text
    assert 'data-cluster-id="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in page.text


async def test_assets_are_versioned_immutable_and_nothing_else_is_served(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/console")).text
    referenced = re.findall(r'(?:href|src)="(/console/assets/[^"]+)"', page)
    assert len(referenced) == 2
    for url in referenced:
        asset = await client.get(url)
        assert asset.status_code == 200
        assert "immutable" in asset.headers["cache-control"]
    module = await client.get(f"/console/assets/{assets_version()}/js/api.js")
    assert module.headers["content-type"].startswith("text/javascript")
    for missing in (
        "/console/assets/0000000000000000/js/api.js",  # an older version
        f"/console/assets/{assets_version()}/js/nothing.js",
        f"/console/assets/{assets_version()}/%2e%2e/pages.py",
    ):
        assert_error(await client.get(missing), 404, "not_found")


@pytest.mark.parametrize("path", ["/console/", "/console/nowhere", "/console/orgs"])
async def test_unknown_console_paths(client: httpx.AsyncClient, path: str) -> None:
    answer: Any = await client.get(path, follow_redirects=False)
    if path == "/console/":
        assert answer.status_code == 308
        assert answer.headers["location"] == "/console"
    else:
        assert_error(answer, 404, "not_found")


def test_the_audit_pages_filter_offers_every_documented_action() -> None:
    """The console's list of audit actions (its filter) is the one docs/API.md documents."""
    root = Path(__file__).resolve().parents[2]
    script = (root / "app/console/static/js/pages/audit.js").read_text()
    listed = script[script.index("const ACTIONS = [") : script.index("];", script.index("ACTIONS"))]
    doc = (root / "docs/API.md").read_text()
    documented = doc[
        doc.index("Audited actions:") : doc.index("`GET /api/v1/organizations/{org_id}/audit`")
    ]
    pattern = r"[a-z_]+\.[a-z_]+"
    assert sorted(re.findall(rf'"({pattern})"', listed)) == sorted(
        re.findall(rf"`({pattern})`", documented)
    )
