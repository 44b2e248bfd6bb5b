"""The classic `/predict` API in process: who may call it (signed in, by API key, anonymous where
PUBLIC_PREDICT allows), which predictions it answers for, its exact bodies, and that its
predictions are the default deployment's ordinary ones. tests/api/test_classic_predict_live.py
drives the same routes against a live server."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from app.core.errors import SetupError
from app.models.user import User as UserRow
from app.services import demo
from tests.support.api import AppFactory, ClientFactory, Key, Org, User, World, assert_error

ACCEPTED = "Request received. Processing asynchronously."
NOT_FOUND = {"error": "Prediction ID not found."}
PENDING = {"error": "Prediction is still being processed."}
ASYNC = {"Async-Mode": "true"}


@dataclass
class Scene:
    org: Org
    developer: User
    viewer: User
    outsider: User
    key: Key
    foreign_key: Key
    cluster_id: str
    default: dict[str, Any]
    other: dict[str, Any]


@pytest.fixture
async def scene(world: World) -> Scene:
    admin, developer, viewer, outsider = [await world.user() for _ in range(4)]
    org = await world.org(admin, developer=developer, viewer=viewer)
    cluster_id = await world.cluster(org, cpu=2)
    default = await world.deployment(developer, cluster_id, cpu=1, name="default")
    other = await world.deployment(developer, cluster_id, cpu=1, name="other")
    foreign = await world.org(outsider)
    return Scene(
        org,
        developer,
        viewer,
        outsider,
        await world.api_key(org, "developer"),
        await world.api_key(foreign, "developer"),
        cluster_id,
        default,
        other,
    )


Serve = Callable[..., Any]


@pytest.fixture
async def serve(
    app: FastAPI, app_factory: AppFactory, client_factory: ClientFactory
) -> AsyncIterator[Serve]:
    """`async with serve(scene, **settings) as as_`: an app whose worker runs, with
    DEFAULT_DEPLOYMENT_ID the scene's default; `as_(user_or_key_or_None)` is a client of it that
    carries that caller's credentials (None: none)."""
    managers: list[LifespanManager] = []

    async def start(scene: Scene | None, **overrides: Any) -> Callable[..., httpx.AsyncClient]:
        settings: dict[str, Any] = {"mock_delay_min": 0.3, "mock_delay_max": 0.4, **overrides}
        if scene is not None:
            settings.setdefault("default_deployment_id", scene.default["id"])
        built = app_factory(worker_in_process=True, **settings)
        manager = LifespanManager(built)
        await manager.__aenter__()
        managers.append(manager)

        def as_(caller: User | Key | None) -> httpx.AsyncClient:
            if caller is None:
                return client_factory(built)
            return client_factory(
                built, cookies=caller.client.cookies, headers=dict(caller.client.headers)
            )

        return as_

    yield start
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


async def poll(client: httpx.AsyncClient, prediction_id: str) -> httpx.Response:
    for _ in range(200):
        response = await client.get(f"/predict/{prediction_id}")
        if response.status_code != 400:
            return response
        assert response.json() == PENDING
        await asyncio.sleep(0.05)
    raise AssertionError("the prediction never finished")


async def logged_out(as_: Callable[..., httpx.AsyncClient], user: User) -> httpx.AsyncClient:
    """A client that still sends `user`'s session cookie after that session was logged out."""
    client = as_(user)
    cookies = dict(client.cookies)
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    client.cookies.update(cookies)
    return client


async def listed(scene: Scene, deployment: dict[str, Any]) -> set[str]:
    response = await scene.developer.client.get(
        f"/api/v1/deployments/{deployment['id']}/predictions"
    )
    assert response.status_code == 200, response.text
    return {p["prediction_id"] for p in response.json()}


async def test_a_developer_gets_the_classic_bodies_and_an_ordinary_prediction(
    scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene)
    developer = as_(scene.developer)

    sync = await developer.post("/predict", json={"input": "hello"})
    assert sync.status_code == 200, sync.text
    output = sync.json()
    assert set(output) == {"input", "result"} and output["input"] == "hello"
    assert isinstance(output["result"], str)

    accepted = await developer.post("/predict", json={"input": "later"}, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    assert set(accepted.json()) == {"message", "prediction_id"}
    assert accepted.json()["message"] == ACCEPTED
    prediction_id = accepted.json()["prediction_id"]
    assert accepted.headers["Location"] == f"/predict/{prediction_id}"
    first = await developer.get(f"/predict/{prediction_id}")
    assert (first.status_code, first.json()) == (400, PENDING)
    done = await poll(developer, prediction_id)
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"prediction_id", "output"}
    assert done.json()["prediction_id"] == prediction_id
    assert done.json()["output"]["input"] == "later"

    # The same prediction through the platform's routes: one of the deployment's.
    assert prediction_id in await listed(scene, scene.default)
    platform = await scene.developer.client.get(f"/api/v1/predictions/{prediction_id}")
    assert platform.json()["output"] == done.json()["output"]


async def test_only_predictions_of_the_default_deployment_are_found(
    scene: Scene, serve: Serve
) -> None:
    elsewhere = await scene.developer.client.post(
        f"/api/v1/deployments/{scene.other['id']}/predict", json={"input": "x"}, headers=ASYNC
    )
    assert elsewhere.status_code == 202, elsewhere.text
    as_ = await serve(scene)
    developer = as_(scene.developer)
    for unknown in (elsewhere.json()["prediction_id"], str(uuid.uuid4()), "not-an-id"):
        response = await developer.get(f"/predict/{unknown}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND), unknown


async def test_roles_tenancy_and_api_keys(scene: Scene, serve: Serve) -> None:
    as_ = await serve(scene)
    made = await as_(scene.key).post("/predict", json={"input": "by key"}, headers=ASYNC)
    assert made.status_code == 202, made.text
    prediction_id = made.json()["prediction_id"]

    viewer = as_(scene.viewer)
    assert_error(await viewer.post("/predict", json={"input": "x"}), 403, "forbidden")
    assert (await poll(viewer, prediction_id)).status_code == 200  # viewers read

    for outsider in (as_(scene.outsider), as_(scene.foreign_key)):
        refused = await outsider.post("/predict", json={"input": "x"}, headers=ASYNC)
        assert_error(refused, 404, "deployment_not_found")
        response = await outsider.get(f"/predict/{prediction_id}")
        assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert await listed(scene, scene.default) == {prediction_id}


async def test_without_public_predict_anonymous_and_stale_callers_get_401(
    scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene)
    signed_out = await logged_out(as_, scene.viewer)
    for caller in (as_(None), signed_out):
        assert_error(await caller.post("/predict", json={"input": "x"}), 401, "not_authenticated")
        assert_error(await caller.get(f"/predict/{uuid.uuid4()}"), 401, "not_authenticated")
    assert await listed(scene, scene.default) == set()


async def test_public_predict_serves_anonymous_callers_their_own_predictions(
    scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene, public_predict=True)
    anonymous = as_(None)
    sync = await anonymous.post("/predict", json={"text": "open to all"})
    assert sync.status_code == 200, sync.text
    assert sync.json()["input"] == "open to all"
    accepted = await anonymous.post("/predict", json={"input": "queued"}, headers=ASYNC)
    public_id = accepted.json()["prediction_id"]
    assert (await poll(anonymous, public_id)).status_code == 200

    member = await as_(scene.developer).post("/predict", json={"input": "mine"}, headers=ASYNC)
    member_id = member.json()["prediction_id"]
    # Anonymous callers read anonymous predictions only; members read all of the deployment's.
    response = await anonymous.get(f"/predict/{member_id}")
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert (await poll(as_(scene.developer), public_id)).status_code == 200
    assert {public_id, member_id} <= await listed(scene, scene.default)

    # Credentials that no longer hold are refused, not taken for an anonymous call.
    stale = await logged_out(as_, scene.viewer)
    assert_error(await stale.post("/predict", json={"input": "x"}), 401, "not_authenticated")


async def test_first_anonymous_calls_at_once_make_one_public_caller(
    app: FastAPI, scene: Scene, serve: Serve
) -> None:
    """Twelve first calls at once, each on a connection of its own: they race to make the
    account, one wins, the others find it, and every call is accepted."""
    as_ = await serve(scene, public_predict=True)
    callers = [as_(None) for _ in range(12)]
    answers = await asyncio.gather(
        *(c.post("/predict", json={"input": f"n{i}"}, headers=ASYNC) for i, c in enumerate(callers))
    )
    assert [a.status_code for a in answers] == [202] * 12, [a.text for a in answers]
    async with app.state.sessionmaker() as db:
        accounts = await db.scalar(
            select(func.count()).where(UserRow.email.like("%@public-predict.invalid"))
        )
    assert accounts == 1
    assert len(await listed(scene, scene.default)) == 12


async def test_anonymous_idempotency_keys_replay_and_public_calls_are_limited_by_address(
    scene: Scene, serve: Serve
) -> None:
    as_ = await serve(
        scene, public_predict=True, rate_limit_enabled=True, rate_limit_predict="3/minute"
    )
    anonymous = as_(None)
    retry = {**ASYNC, "Idempotency-Key": "order-17"}
    first = await anonymous.post("/predict", json={"input": "once"}, headers=retry)
    again = await anonymous.post("/predict", json={"input": "once"}, headers=retry)
    assert first.status_code == again.status_code == 202
    assert first.json()["prediction_id"] == again.json()["prediction_id"]
    reused = await anonymous.post("/predict", json={"input": "other"}, headers=retry)
    assert_error(reused, 409, "idempotency_key_reused")
    # Another address has keys of its own: neither replays nor spends this one's.
    elsewhere = {**retry, "X-Forwarded-For": "203.0.113.9"}
    theirs = await anonymous.post("/predict", json={"input": "other"}, headers=elsewhere)
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["prediction_id"] != first.json()["prediction_id"]
    limited = await anonymous.post("/predict", json={"input": "x"}, headers=ASYNC)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    # A signed-in caller is limited as themselves, not by the address they share.
    signed_in = await as_(scene.developer).post("/predict", json={"input": "x"}, headers=ASYNC)
    assert signed_in.status_code == 202, signed_in.text


async def test_anonymous_callers_direct_no_callbacks_and_learn_nothing_of_the_cluster(
    world: World, scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene, public_predict=True, webhook_allowed_networks="127.0.0.0/8")
    anonymous = as_(None)
    callback = {"input": "x", "callback_url": "http://127.0.0.1:9/hook"}
    refused = await anonymous.post("/predict", json=callback, headers=ASYNC)
    assert_error(refused, 422, "callback_url_refused")
    assert await listed(scene, scene.default) == set()
    accepted = await as_(scene.developer).post("/predict", json=callback, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text

    await world.deployment(scene.developer, scene.cluster_id, cpu=2, priority=10)
    body = assert_error(
        await anonymous.post("/predict", json={"input": "x"}), 503, "deployment_unavailable"
    )
    assert body["error"] == "The default deployment is not running at the moment; retry later."
    member = await as_(scene.developer).post("/predict", json={"input": "x"})
    assert "pending (preempted)" in assert_error(member, 503, "deployment_unavailable")["error"]


async def test_a_deployment_that_is_not_running_is_503_with_the_reason_and_retry_after(
    world: World, scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene)
    developer = as_(scene.developer)
    # A higher-priority deployment takes the whole cluster: the default one is preempted.
    urgent = await world.deployment(scene.developer, scene.cluster_id, cpu=2, priority=10)
    assert urgent["status"] == "running"
    for headers in ({}, ASYNC):
        refused = await developer.post("/predict", json={"input": "x"}, headers=headers)
        body = assert_error(refused, 503, "deployment_unavailable")
        assert "pending (preempted)" in body["error"], body
        assert int(refused.headers["Retry-After"]) >= 1
    completed = await scene.developer.client.post(f"/api/v1/deployments/{urgent['id']}/complete")
    assert completed.status_code == 200, completed.text
    assert (await developer.post("/predict", json={"input": "back"})).status_code == 200

    ended = await scene.developer.client.post(f"/api/v1/deployments/{scene.default['id']}/complete")
    assert ended.status_code == 200, ended.text
    refused = await developer.post("/predict", json={"input": "x"})
    assert (
        "completed and will not run again"
        in assert_error(refused, 503, "deployment_unavailable")["error"]
    )
    assert refused.headers["Retry-After"].isdigit()


async def test_without_a_default_deployment_both_routes_say_so(scene: Scene, serve: Serve) -> None:
    as_ = await serve(None)
    for caller in (as_(None), as_(scene.developer)):
        assert_error(
            await caller.post("/predict", json={"input": "x"}), 404, "default_deployment_unset"
        )
        assert_error(await caller.get(f"/predict/{uuid.uuid4()}"), 404, "default_deployment_unset")
    missing = await serve(scene, default_deployment_id=str(uuid.uuid4()), public_predict=True)
    assert_error(
        await missing(None).post("/predict", json={"input": "x"}), 404, "deployment_not_found"
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": "a", "text": "b"},
        {"input": None, "text": "b"},
        {"input": None},
        {"text": ""},
        {"input": "x", "unknown": 1},
        ["x"],
    ],
)
async def test_the_text_comes_as_input_or_text_exactly_once(
    scene: Scene, serve: Serve, body: Any
) -> None:
    as_ = await serve(scene)
    refused = await as_(scene.developer).post("/predict", json=body)
    assert_error(refused, 422, "validation_error")
    assert await listed(scene, scene.default) == set()


async def test_deleting_the_organization_deletes_its_public_caller(
    app: FastAPI, scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene, public_predict=True)
    assert (await as_(None).post("/predict", json={"input": "x"})).status_code == 200

    async def public_accounts() -> int:
        async with app.state.sessionmaker() as db:
            found = await db.scalar(
                select(func.count()).where(UserRow.email.like("%@public-predict.invalid"))
            )
            return int(found or 0)

    assert await public_accounts() == 1
    admin = scene.org.admin.client
    for deployment in (scene.default, scene.other):
        await admin.post(f"/api/v1/deployments/{deployment['id']}/cancel")
    assert (await admin.delete(f"/api/v1/organizations/{scene.org.id}")).status_code == 204
    assert await public_accounts() == 0


async def test_deleting_the_cluster_deletes_its_deployments_public_callers(
    app: FastAPI, scene: Scene, serve: Serve
) -> None:
    as_ = await serve(scene, public_predict=True)
    assert (await as_(None).post("/predict", json={"input": "x"})).status_code == 200
    admin = scene.org.admin.client
    for deployment in (scene.default, scene.other):
        await admin.post(f"/api/v1/deployments/{deployment['id']}/cancel")
    assert (await admin.delete(f"/api/v1/clusters/{scene.cluster_id}")).status_code == 204
    async with app.state.sessionmaker() as db:
        left = await db.scalar(
            select(func.count()).where(UserRow.email.like("%@public-predict.invalid"))
        )
    assert left == 0


async def test_the_demo_seed_refuses_a_deployment_it_did_not_create(
    app: FastAPI, scene: Scene
) -> None:
    async with app.state.sessionmaker() as db:
        with pytest.raises(SetupError, match="did not create"):
            await demo.seed(db, uuid.UUID(scene.default["id"]), "mock")
        seeded = await demo.seed(db, uuid.uuid4(), "mock")
        assert seeded.created and seeded.deployment.status == "running"
        again = await demo.seed(db, seeded.deployment.id, "mock")
        assert not again.created and again.organization.id == seeded.organization.id


async def test_the_published_schema_says_who_may_call(scene: Scene, serve: Serve) -> None:
    for public, anonymous_allowed in ((False, False), (True, True)):
        as_ = await serve(scene, public_predict=public)
        schema = (await as_(None).get("/openapi.json")).json()
        for path, method in (("/predict", "post"), ("/predict/{prediction_id}", "get")):
            security = schema["paths"][path][method]["security"]
            assert ({} in security) is anonymous_allowed
            assert {"sessionCookie": []} in security and {"apiKey": []} in security
