"""Access control, generated from the app's own route table (its OpenAPI paths): a new route
that is not classified here fails these tests until its access rules are stated and proven."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.api import Org, User, World, assert_error

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
}
# Authenticated, but not inside any organization: nothing to hide from outsiders.
UNSCOPED = {
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations/join"),
}
# The first org-owned id in a path decides which "not found" an outsider gets.
SCOPED_PARAMETERS = {"org_id": "organization"}


@dataclass
class Scene:
    org: Org
    admin: User
    developer: User
    viewer: User
    target: User
    outsider: User

    def by_role(self, role: str) -> User:
        return {"admin": self.admin, "developer": self.developer, "viewer": self.viewer}[role]

    def fill(self, path: str) -> str:
        values = {"org_id": self.org.id, "user_id": self.target.id}
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def build_scene(world: World) -> Scene:
    admin, developer, viewer, target, outsider = [await world.user() for _ in range(5)]
    org = await world.org(admin, developer=developer, viewer=viewer, developer2=target)
    return Scene(org, admin, developer, viewer, target, outsider)


def operations(app: FastAPI) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


def body_for(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PATCH", "PUT") else None


# Role table of the contract: (method, path, minimum role, body).
ROLE_TABLE: list[tuple[str, str, str, Callable[[], dict[str, Any] | None]]] = [
    ("GET", "/api/v1/organizations/{org_id}", "viewer", lambda: None),
    ("GET", "/api/v1/organizations/{org_id}/members", "viewer", lambda: None),
    ("POST", "/api/v1/organizations/{org_id}/invite-code", "admin", lambda: None),
    (
        "PATCH",
        "/api/v1/organizations/{org_id}/members/{user_id}",
        "admin",
        lambda: {"role": "viewer"},
    ),
    ("DELETE", "/api/v1/organizations/{org_id}/members/{user_id}", "admin", lambda: None),
    ("DELETE", "/api/v1/organizations/{org_id}", "admin", lambda: None),
]
RANK = {"viewer": 0, "developer": 1, "admin": 2}


def test_every_route_is_classified(app: FastAPI) -> None:
    scoped = {(m, p) for m, p, _, _ in ROLE_TABLE}
    unclassified = [op for op in operations(app) if op not in PUBLIC | UNSCOPED | scoped]
    assert unclassified == [], "state the access rules of these routes in tests/api/test_access.py"
    for _, path in scoped:
        first = re.findall(r"\{(\w+)\}", path)[0]
        assert first in SCOPED_PARAMETERS, path


async def test_anonymous_callers_get_401_on_every_authenticated_route(
    app: FastAPI, world: World
) -> None:
    scene = await build_scene(world)
    anonymous = world.new_client()
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC:
            continue
        response = await anonymous.request(method, scene.fill(path), json=body_for(method))
        assert_error(response, 401, "not_authenticated")
        checked += 1
    assert checked >= len(UNSCOPED) + len(ROLE_TABLE)


async def test_outsiders_get_404_never_403_on_every_org_scoped_route(
    app: FastAPI, world: World
) -> None:
    scene = await build_scene(world)
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC | UNSCOPED:
            continue
        resource = SCOPED_PARAMETERS[re.findall(r"\{(\w+)\}", path)[0]]
        response = await scene.outsider.client.request(
            method, scene.fill(path), json=body_for(method)
        )
        assert_error(response, 404, f"{resource}_not_found")
        checked += 1
    assert checked == len(ROLE_TABLE)
    # Nothing an outsider tried changed anything.
    assert (
        await scene.admin.client.get(f"/api/v1/organizations/{scene.org.id}")
    ).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "developer", "admin"])
@pytest.mark.parametrize(("method", "path", "minimum", "body"), ROLE_TABLE)
async def test_role_table(
    world: World,
    role: str,
    method: str,
    path: str,
    minimum: str,
    body: Callable[[], dict[str, Any] | None],
) -> None:
    scene = await build_scene(world)
    actor = scene.by_role(role)
    response = await actor.client.request(method, scene.fill(path), json=body())
    if RANK[role] >= RANK[minimum]:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert_error(response, 403, "forbidden")


async def test_a_member_may_remove_themself_whatever_the_role(world: World) -> None:
    scene = await build_scene(world)
    for user in (scene.viewer, scene.developer):
        response = await user.client.delete(
            f"/api/v1/organizations/{scene.org.id}/members/{user.id}"
        )
        assert response.status_code == 204
