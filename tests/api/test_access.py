"""Access control, read from the app itself: every route under an organization-scoped path
declares the action its access dependency enforces (`app/api/deps.py`), and the app's one role
table (`permissions.ROLE_TABLE`) gives that action's minimum role. A new route that is not public,
not unscoped and declares no action fails these tests until its access rules are stated."""

import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import update
from starlette.routing import BaseRoute

from app.api.deps import declared_action
from app.api.v1.router import api_router
from app.core.errors import Forbidden
from app.db.base import utcnow
from app.models.deployment import Deployment
from app.models.organization import Organization, Role
from app.models.prediction import Prediction, PredictionStatus
from app.services import permissions
from app.services.permissions import ROLE_TABLE, Action
from app.services.tenancy import Scoped
from tests.support.api import Key, Org, User, World, assert_error
from tests.support.predictions import prediction_row

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
    ("DELETE", "/api/v1/auth/sessions"),
    ("POST", "/api/v1/auth/password"),
    ("GET", "/api/v1/auth/me"),
    ("GET", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations/join"),
    ("GET", "/api/v1/scheduling/strategies"),
    ("GET", "/api/v1/models"),
}
# The classic /predict API (app/api/classic.py): bound by DEFAULT_DEPLOYMENT_ID to one
# deployment, with its own bodies and, where PUBLIC_PREDICT allows it, anonymous callers.
# tests/api/test_classic_predict.py states its rules: 401, 404 across tenants, the role table.
CLASSIC = {("POST", "/predict"), ("GET", "/predict/{prediction_id}")}
# Unscoped routes that belong to a person (sessions, passwords, memberships of several
# organizations): an API key is refused them (403); it may use the other unscoped routes.
PERSON_ONLY = {
    ("POST", "/api/v1/auth/logout"),
    ("DELETE", "/api/v1/auth/sessions"),
    ("POST", "/api/v1/auth/password"),
    ("POST", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations/join"),
}
# The first org-owned id in a path decides which "not found" an outsider gets.
SCOPED_PARAMETERS = {
    "org_id": "organization",
    "cluster_id": "cluster",
    "deployment_id": "deployment",
    "prediction_id": "prediction",
    "api_key_id": "api_key",
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
    api_key_id: str

    def by_role(self, role: str) -> User:
        return {"admin": self.admin, "developer": self.developer, "viewer": self.viewer}[role]

    def fill(self, path: str) -> str:
        values = {
            "org_id": self.org.id,
            "user_id": self.target.id,
            "cluster_id": self.cluster_id,
            "deployment_id": self.deployment_id,
            "prediction_id": self.prediction_id,
            "api_key_id": self.api_key_id,
        }
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def finished_prediction(app: FastAPI, deployment: dict[str, Any], user_id: str) -> str:
    """A completed prediction row, as a worker would leave it (no worker runs in these tests)."""
    prediction = prediction_row(
        deployment,
        user_id,
        PredictionStatus.completed,
        output={"input": "x", "result": "1234"},
        completed_at=utcnow(),
    )
    async with app.state.sessionmaker() as db:
        db.add(prediction)
        await db.commit()
    return str(prediction.id)


async def requeue(app: FastAPI, prediction_id: str) -> None:
    """The scene's prediction back to `queued`, for the routes that act on unfinished ones."""
    async with app.state.sessionmaker() as db:
        await db.execute(
            update(Prediction)
            .where(Prediction.id == uuid.UUID(prediction_id))
            .values(status=PredictionStatus.queued, output=None, completed_at=None)
        )
        await db.commit()


async def build_scene(world: World, app: FastAPI) -> Scene:
    admin, developer, viewer, target, outsider = [await world.user() for _ in range(5)]
    org = await world.org(admin, developer=developer, viewer=viewer, developer2=target)
    cluster = await world.cluster(org, cpu=8)
    deployment = await world.deployment(developer, cluster, cpu=1)
    assert deployment["status"] == "running"
    prediction = await finished_prediction(app, deployment, developer.id)
    key = await world.api_key(org, "viewer")
    return Scene(
        org,
        admin,
        developer,
        viewer,
        target,
        outsider,
        cluster,
        deployment["id"],
        prediction,
        key.id,
    )


async def build_key_scene(world: World, app: FastAPI, role: str) -> tuple[Scene, Key]:
    """The scene, with an API key of `role` in its organization that owns the scene's deployment
    and prediction (as the developer owns them in the plain scene)."""
    scene = await build_scene(world, app)
    key = await world.api_key(scene.org, role)
    owner = key if role == "developer" else await world.api_key(scene.org, "developer")
    deployment = await world.deployment(owner, scene.cluster_id, cpu=1)
    account = owner.body["service_account_id"]
    prediction = await finished_prediction(app, deployment, account)
    return replace(scene, deployment_id=deployment["id"], prediction_id=prediction), key


Route = tuple[str, str]  # (method, path)


def operations(app: FastAPI) -> list[Route]:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() for method in item)


def is_org_scoped(path: str) -> bool:
    """Under an organization-scoped path: its first path parameter names an org-owned row."""
    parameters = re.findall(r"\{(\w+)\}", path)
    return bool(parameters) and parameters[0] in SCOPED_PARAMETERS


def actions_of(dependant: Dependant) -> list[Action]:
    """The actions declared by the access dependencies anywhere in a route's dependency tree."""
    found: list[Action] = []
    for dependency in dependant.dependencies:
        action = declared_action(dependency.call)
        if action is not None:
            found.append(action)
        found.extend(actions_of(dependency))
    return found


def declared_actions(routes: Sequence[BaseRoute]) -> dict[Route, list[Action]]:
    """Every API route (included routers walked through, paths with their prefixes) with the
    actions its dependencies declare."""
    found: dict[Route, list[Action]] = {}
    for context in iter_route_contexts(routes):
        if isinstance(context.original_route, APIRoute) and context.path is not None:
            dependant: Dependant = context.dependant  # the router's dependencies included
            for method in context.methods or ():
                found[(method, context.path)] = actions_of(dependant)
    return found


# The org-scoped routes, read from the same router the app includes (parametrization needs them
# before any app is built); `test_every_route_is_classified` checks they are the app's.
SCOPED = sorted(route for route in declared_actions(api_router.routes) if is_org_scoped(route[1]))


def body_for(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PATCH", "PUT") else None


def new_cluster() -> dict[str, Any]:
    return {"name": "another", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}}


def new_deployment() -> dict[str, Any]:
    return {"name": "d", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}}


ORG = "/api/v1/organizations/{org_id}"
CLUSTER = "/api/v1/clusters/{cluster_id}"
DEPLOYMENT = "/api/v1/deployments/{deployment_id}"
# Test data only (the rules come from the app): the body each route is sent with (none if absent),
# and the routes that first need the scene idle, since only idle clusters and orgs can be deleted
# (the scene's deployment, the developer's own, is cancelled first).
BODIES: dict[Route, Callable[[], dict[str, Any]]] = {
    ("PATCH", f"{ORG}/members/{{user_id}}"): lambda: {"role": "viewer"},
    ("POST", f"{ORG}/clusters"): new_cluster,
    ("PATCH", CLUSTER): lambda: {"name": "renamed"},
    ("POST", f"{CLUSTER}/deployments"): new_deployment,
    ("POST", f"{DEPLOYMENT}/predict"): lambda: {"input": "x"},
    ("POST", f"{ORG}/api-keys"): lambda: {"name": "k", "role": "viewer"},
}
NEEDS_IDLE: set[Route] = {("DELETE", ORG), ("DELETE", CLUSTER)}
# ... and the routes that need the scene's prediction unfinished (only such can be cancelled).
NEEDS_QUEUED: set[Route] = {("POST", "/api/v1/predictions/{prediction_id}/cancel")}
RANK = {Role.viewer: 0, Role.developer: 1, Role.admin: 2}

# The contract's role table (docs/API.md, "Organizations and roles"), as the minimum role of each
# action: pinned here so that any change to `permissions.ROLE_TABLE` shows up as a failing test.
CONTRACT: dict[Role, set[Action]] = {
    Role.viewer: {
        Action.read_organization,
        Action.read_members,
        Action.read_clusters,
        Action.read_deployments,
        Action.read_events,
        Action.read_predictions,
    },
    Role.developer: {
        Action.create_deployment,
        Action.run_prediction,
        Action.end_own_deployment,
        Action.cancel_own_prediction,
    },
    Role.admin: {
        Action.end_any_deployment,
        Action.create_cluster,
        Action.update_cluster,
        Action.delete_cluster,
        Action.see_invite_code,
        Action.rotate_invite_code,
        Action.change_role,
        Action.remove_member,
        Action.delete_organization,
        Action.cancel_any_prediction,
        Action.manage_api_keys,
        Action.read_audit,
        Action.manage_webhooks,
    },
}


def test_the_role_table_is_the_contract() -> None:
    assert dict(ROLE_TABLE) == {
        action: role for role, actions in CONTRACT.items() for action in actions
    }
    assert set(ROLE_TABLE) == set(Action)
    with pytest.raises(TypeError):
        ROLE_TABLE[Action.read_members] = Role.admin  # type: ignore[index]


API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
# In docs/API.md a route's role is either a table cell (`| `GET /path?query` `{body}` | role |`)
# or a parenthesis right after it at the start of a line (`` `GET /path` (role...) ``).
DOCUMENTED_ROLE = re.compile(
    r"^(?:\| )?`(GET|POST|PATCH|DELETE) (/api/v1/[^`?\s]+)[^`]*`(?: `[^`]*`)?"
    r"(?: \| ([^|]+) \|| \(([^)]*)\))",
    re.MULTILINE,
)


def documented_roles() -> dict[Route, Role]:
    roles: dict[Route, Role] = {}
    for method, path, cell, aside in DOCUMENTED_ROLE.findall(API_DOC.read_text()):
        text = (cell or aside).replace("any member", "viewer")
        first = re.search(r"viewer|developer|admin", text)
        if first is not None:
            roles[(method, path)] = Role(first.group())
    return roles


def test_every_route_declares_the_action_the_contract_documents() -> None:
    """The route table of the app against the roles docs/API.md gives each route: an action
    declared on the wrong route would otherwise pass the role-table test below."""
    documented = documented_roles()
    declared = declared_actions(api_router.routes)
    mismatched = {
        route: (documented.get(route), ROLE_TABLE[action])
        for route in SCOPED
        for action in declared[route]
        if documented.get(route) != ROLE_TABLE[action]
    }
    assert mismatched == {}


def scoped_deployment(role: Role, own: bool) -> Scoped[Deployment]:
    me = uuid.uuid4()
    return Scoped(Deployment(created_by=me if own else uuid.uuid4()), role, me)


@pytest.mark.parametrize(
    ("role", "own", "allowed"),
    [
        (Role.viewer, True, False),
        (Role.viewer, False, False),
        (Role.developer, True, True),
        (Role.developer, False, False),
        (Role.admin, True, True),
        (Role.admin, False, True),
    ],
)
def test_who_may_end_a_deployment(role: Role, own: bool, allowed: bool) -> None:
    access = scoped_deployment(role, own)
    if allowed:
        assert permissions.require_may_end(access) is access
    else:
        with pytest.raises(Forbidden):
            permissions.require_may_end(access)


@pytest.mark.parametrize("role", list(Role))
def test_who_may_remove_a_member(role: Role) -> None:
    access = Scoped(Organization(id=uuid.uuid4()), role, uuid.uuid4())
    assert permissions.require_may_remove_member(access, access.user_id) is access  # leaving
    for someone_else in (uuid.uuid4(), None):
        if role == Role.admin:
            assert permissions.require_may_remove_member(access, someone_else) is access
        else:
            with pytest.raises(Forbidden):
                permissions.require_may_remove_member(access, someone_else)


def test_every_route_is_classified(app: FastAPI) -> None:
    # The console's pages take ids in their paths too, but hold no data and take no dependency:
    # tests/api/test_console_rules.py holds them to that.
    actions = {
        route: found
        for route, found in declared_actions(app.routes).items()
        if not route[1].startswith("/console") and route not in CLASSIC
    }
    scoped = {route for route in actions if is_org_scoped(route[1])}
    unclassified = [op for op in operations(app) if op not in PUBLIC | UNSCOPED | CLASSIC | scoped]
    assert unclassified == [], "state the access rules of these routes in tests/api/test_access.py"
    undeclared = sorted(route for route in scoped if len(actions[route]) != 1)
    assert undeclared == [], "each org-scoped route needs exactly one access dependency (deps.py)"
    assert sorted(scoped) == SCOPED
    assert [route for route in PUBLIC | UNSCOPED if actions.get(route)] == []
    assert set(BODIES) | NEEDS_IDLE | NEEDS_QUEUED <= scoped, (
        "test data for a route that does not exist"
    )


async def test_anonymous_callers_get_401_on_every_authenticated_route(
    app: FastAPI, world: World
) -> None:
    scene = await build_scene(world, app)
    anonymous = world.new_client()
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC | CLASSIC:
            continue
        response = await anonymous.request(
            method, scene.fill(path), json=body_for(method), headers=HEADERS
        )
        assert_error(response, 401, "not_authenticated")
        checked += 1
    assert checked >= len(UNSCOPED) + len(SCOPED)


async def test_outsiders_get_404_never_403_on_every_org_scoped_route(
    app: FastAPI, world: World
) -> None:
    scene = await build_scene(world, app)
    checked = 0
    for method, path in operations(app):
        if (method, path) in PUBLIC | UNSCOPED | CLASSIC:
            continue
        resource = SCOPED_PARAMETERS[re.findall(r"\{(\w+)\}", path)[0]]
        response = await scene.outsider.client.request(
            method, scene.fill(path), json=body_for(method), headers=HEADERS
        )
        assert_error(response, 404, f"{resource}_not_found")
        checked += 1
    assert checked == len(SCOPED)
    # Nothing an outsider tried changed anything.
    assert (
        await scene.admin.client.get(f"/api/v1/organizations/{scene.org.id}")
    ).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "developer", "admin"])
@pytest.mark.parametrize(("method", "path"), SCOPED)
async def test_role_table(app: FastAPI, world: World, role: str, method: str, path: str) -> None:
    """Each org-scoped route against the minimum role of the action it declares."""
    scene = await build_scene(world, app)
    await check_role(app, scene, scene.by_role(role).client, role, (method, path))


async def check_role(
    app: FastAPI, scene: Scene, caller: httpx.AsyncClient, role: str, route: Route
) -> None:
    """`caller`, of `role`, on `route` of `scene`: 2xx if the role allows the route's action,
    else 403."""
    [action] = declared_actions(app.routes)[route]
    if route in NEEDS_IDLE:
        await scene.admin.client.post(f"/api/v1/deployments/{scene.deployment_id}/cancel")
    if route in NEEDS_QUEUED:
        await requeue(app, scene.prediction_id)
    body = BODIES.get(route, lambda: None)()
    method, path = route
    response = await caller.request(method, scene.fill(path), json=body, headers=HEADERS)
    if RANK[Role(role)] >= RANK[ROLE_TABLE[action]]:
        assert 200 <= response.status_code < 300, (action, response.text)
    else:
        assert_error(response, 403, "forbidden")


async def test_developers_act_only_on_their_own_deployments(app: FastAPI, world: World) -> None:
    scene = await build_scene(world, app)
    for action in ("complete", "cancel"):
        response = await scene.target.client.post(
            f"/api/v1/deployments/{scene.deployment_id}/{action}"
        )
        body = assert_error(response, 403, "forbidden")
        assert body["error"] == "Developers may only act on their own deployments."
    done = await scene.admin.client.post(f"/api/v1/deployments/{scene.deployment_id}/complete")
    assert done.status_code == 200


async def test_a_member_may_remove_themself_whatever_the_role(app: FastAPI, world: World) -> None:
    scene = await build_scene(world, app)
    for user in (scene.viewer, scene.developer):
        response = await user.client.delete(
            f"/api/v1/organizations/{scene.org.id}/members/{user.id}"
        )
        assert response.status_code == 204


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(world: World) -> None:
    """Role changes and removals take the organization lock (`lock_organization`) before counting
    admins, so of two admins demoting or removing each other at once one gets 409 `last_admin`
    (or, if the other went first, 403 as a viewer now or 404 as a member no more). Without the
    lock this loses the race within a few rounds."""
    for round_ in range(20):
        first, second = await world.user(), await world.user()
        org = await world.org(first, admin2=second)
        members = f"/api/v1/organizations/{org.id}/members"
        ends = await asyncio.gather(
            first.client.delete(f"{members}/{second.id}")
            if round_ % 2
            else first.client.patch(f"{members}/{second.id}", json={"role": "viewer"}),
            second.client.patch(f"{members}/{first.id}", json={"role": "developer"}),
        )
        assert sorted(r.status_code < 300 for r in ends) == [False, True], [r.text for r in ends]
        assert {r.json()["code"] for r in ends if r.status_code >= 300} <= {
            "last_admin",
            "forbidden",
            "organization_not_found",
        }
        survivor = first if ends[0].status_code < 300 else second
        listing = (await survivor.client.get(members)).json()
        assert [m["user_id"] for m in listing if m["role"] == "admin"] == [survivor.id]


async def test_keys_of_another_organization_get_404_on_every_org_scoped_route(
    app: FastAPI, world: World
) -> None:
    """A key is an outsider to every organization but its own, exactly like a person who is not a
    member: 404, never 403, whatever its role."""
    scene = await build_scene(world, app)
    elsewhere = await world.api_key(await world.org(), "developer")
    checked = 0
    for method, path in SCOPED:
        resource = SCOPED_PARAMETERS[re.findall(r"\{(\w+)\}", path)[0]]
        body = BODIES.get((method, path), lambda: None)()
        response = await elsewhere.client.request(
            method, scene.fill(path), json=body, headers=HEADERS
        )
        assert_error(response, 404, f"{resource}_not_found")
        checked += 1
    assert checked == len(SCOPED)
    assert (
        await scene.admin.client.get(f"/api/v1/organizations/{scene.org.id}")
    ).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "developer"])
@pytest.mark.parametrize(("method", "path"), SCOPED)
async def test_role_table_for_keys(
    app: FastAPI, world: World, role: str, method: str, path: str
) -> None:
    """An API key is a caller of its role in its organization: the same table, row by row."""
    scene, key = await build_key_scene(world, app, role)
    await check_role(app, scene, key.client, role, (method, path))


async def test_keys_on_the_unscoped_routes(app: FastAPI, world: World) -> None:
    scene = await build_scene(world, app)
    key = await world.api_key(scene.org, "developer")
    bodies = {
        ("POST", "/api/v1/organizations"): {"name": "mine"},
        ("POST", "/api/v1/organizations/join"): {"invite_code": scene.org.invite_code},
    }
    assert PERSON_ONLY <= UNSCOPED
    for method, path in sorted(UNSCOPED):
        response = await key.client.request(method, path, json=bodies.get((method, path)))
        if (method, path) in PERSON_ONLY:
            assert_error(response, 403, "forbidden")
        else:
            assert response.status_code == 200, (method, path, response.text)
