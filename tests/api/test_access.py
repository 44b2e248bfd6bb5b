"""Access control, generated from the app's own route table (its OpenAPI paths): a new route
that is not classified here fails these tests until its access rules are stated and proven."""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from app.db.base import utcnow
from app.models.prediction import Prediction, PredictionStatus
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
    ("GET", "/api/v1/scheduling/strategies"),
    ("GET", "/api/v1/models"),
}
# The first org-owned id in a path decides which "not found" an outsider gets.
SCOPED_PARAMETERS = {
    "org_id": "organization",
    "cluster_id": "cluster",
    "deployment_id": "deployment",
    "prediction_id": "prediction",
}
# Without a worker a synchronous predict would wait; these tests only care about access.
HEADERS = {"Async-Mode": "true"}


@dataclass
class Scene:
    org: Org
    admin: User
    developer: User
    viewer: User
    target: User
    outsider: User
    cluster_id: str
    deployment_id: str
    prediction_id: str

    def by_role(self, role: str) -> User:
        return {"admin": self.admin, "developer": self.developer, "viewer": self.viewer}[role]

    def fill(self, path: str) -> str:
        values = {
            "org_id": self.org.id,
            "user_id": self.target.id,
            "cluster_id": self.cluster_id,
            "deployment_id": self.deployment_id,
            "prediction_id": self.prediction_id,
        }
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def finished_prediction(app: FastAPI, deployment: dict[str, Any], user: User) -> str:
    """A completed prediction row, as a worker would leave it (no worker runs in these tests)."""
    prediction = Prediction(
        id=uuid.uuid4(),
        organization_id=uuid.UUID(deployment["organization_id"]),
        deployment_id=uuid.UUID(deployment["id"]),
        created_by=uuid.UUID(user.id),
        model="mock",
        input="x",
        status=PredictionStatus.completed,
        output={"input": "x", "result": "1234"},
        attempts=1,
        completed_at=utcnow(),
    )
    async with app.state.sessionmaker() as db:
        db.add(prediction)
        await db.commit()
    return str(prediction.id)


async def build_scene(world: World, app: FastAPI) -> Scene:
    admin, developer, viewer, target, outsider = [await world.user() for _ in range(5)]
    org = await world.org(admin, developer=developer, viewer=viewer, developer2=target)
    cluster = await world.cluster(org, cpu=8)
    deployment = await world.deployment(developer, cluster, cpu=1)
    assert deployment["status"] == "running"
    prediction = await finished_prediction(app, deployment, developer)
    return Scene(
        org, admin, developer, viewer, target, outsider, cluster, deployment["id"], prediction
    )


def operations(app: FastAPI) -> list[tuple[str, str]]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


def body_for(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PATCH", "PUT") else None


def none() -> None:
    return None


def new_cluster() -> dict[str, Any]:
    return {"name": "another", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}}


def new_deployment() -> dict[str, Any]:
    return {"name": "d", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}}


ORG = "/api/v1/organizations/{org_id}"
CLUSTER = "/api/v1/clusters/{cluster_id}"
DEPLOYMENT = "/api/v1/deployments/{deployment_id}"
# Role table of the contract: (method, path, minimum role, body). The scene's deployment is the
# developer's own; "(idle)" rows first cancel it, since only idle clusters and orgs can be deleted.
ROLE_TABLE: list[tuple[str, str, str, Callable[[], dict[str, Any] | None]]] = [
    ("GET", ORG, "viewer", none),
    ("GET", f"{ORG}/members", "viewer", none),
    ("POST", f"{ORG}/invite-code", "admin", none),
    ("PATCH", f"{ORG}/members/{{user_id}}", "admin", lambda: {"role": "viewer"}),
    ("DELETE", f"{ORG}/members/{{user_id}}", "admin", none),
    ("DELETE", ORG, "admin (idle)", none),
    ("POST", f"{ORG}/clusters", "admin", new_cluster),
    ("GET", f"{ORG}/clusters", "viewer", none),
    ("GET", f"{ORG}/deployments", "viewer", none),
    ("GET", CLUSTER, "viewer", none),
    ("PATCH", CLUSTER, "admin", lambda: {"name": "renamed"}),
    ("DELETE", CLUSTER, "admin (idle)", none),
    ("POST", f"{CLUSTER}/deployments", "developer", new_deployment),
    ("GET", f"{CLUSTER}/deployments", "viewer", none),
    ("GET", DEPLOYMENT, "viewer", none),
    ("GET", f"{DEPLOYMENT}/events", "viewer", none),
    ("POST", f"{DEPLOYMENT}/complete", "developer", none),
    ("POST", f"{DEPLOYMENT}/cancel", "developer", none),
    ("POST", f"{DEPLOYMENT}/predict", "developer", lambda: {"input": "x"}),
    ("GET", f"{DEPLOYMENT}/predictions", "viewer", none),
    ("GET", "/api/v1/predictions/{prediction_id}", "viewer", none),
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
    scene = await build_scene(world, app)
    anonymous = world.new_client()
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC:
            continue
        response = await anonymous.request(
            method, scene.fill(path), json=body_for(method), headers=HEADERS
        )
        assert_error(response, 401, "not_authenticated")
        checked += 1
    assert checked >= len(UNSCOPED) + len(ROLE_TABLE)


async def test_outsiders_get_404_never_403_on_every_org_scoped_route(
    app: FastAPI, world: World
) -> None:
    scene = await build_scene(world, app)
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC | UNSCOPED:
            continue
        resource = SCOPED_PARAMETERS[re.findall(r"\{(\w+)\}", path)[0]]
        response = await scene.outsider.client.request(
            method, scene.fill(path), json=body_for(method), headers=HEADERS
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
    app: FastAPI,
    world: World,
    role: str,
    method: str,
    path: str,
    minimum: str,
    body: Callable[[], dict[str, Any] | None],
) -> None:
    scene = await build_scene(world, app)
    if minimum.endswith("(idle)"):
        await scene.admin.client.post(f"/api/v1/deployments/{scene.deployment_id}/cancel")
    actor = scene.by_role(role)
    response = await actor.client.request(method, scene.fill(path), json=body(), headers=HEADERS)
    if RANK[role] >= RANK[minimum.split()[0]]:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert_error(response, 403, "forbidden")


async def test_developers_act_only_on_their_own_deployments(app: FastAPI, world: World) -> None:
    scene = await build_scene(world, app)
    for action in ("complete", "cancel"):
        response = await scene.target.client.post(
            f"/api/v1/deployments/{scene.deployment_id}/{action}"
        )
        assert_error(response, 403, "forbidden")
    done = await scene.admin.client.post(f"/api/v1/deployments/{scene.deployment_id}/complete")
    assert done.status_code == 200


async def test_a_member_may_remove_themself_whatever_the_role(app: FastAPI, world: World) -> None:
    scene = await build_scene(world, app)
    for user in (scene.viewer, scene.developer):
        response = await user.client.delete(
            f"/api/v1/organizations/{scene.org.id}/members/{user.id}"
        )
        assert response.status_code == 204
