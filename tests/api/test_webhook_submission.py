"""Callback URLs at submission (predict and deployment creation): refused as the server-side
request forgery guard says, before anything is stored; the routes of the signing secret and of
the attempts; and the bodies of callers that use none of it, unchanged."""

from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.api import AppFactory, ClientFactory, Org, User, World, assert_error
from tests.support.webhooks import attempts_of, predict, secret_of

pytestmark = pytest.mark.both_backends

REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost/hook",
    "http://[::ffff:192.168.0.1]/hook",
    "ftp://hooks.example.com/hook",
    "http://user:secret@hooks.example.com/hook",
]


async def scene(world: World) -> tuple[Org, User, str, dict[str, Any]]:
    """An admin's organization, a cluster (its id) and a running deployment."""
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    deployment = await world.deployment(admin, cluster, cpu=1)
    return org, admin, cluster, deployment


@pytest.mark.parametrize("url", REFUSED)
async def test_refused_callback_urls_are_422_and_store_nothing(world: World, url: str) -> None:
    _, admin, cluster, deployment = await scene(world)
    response = await admin.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict",
        json={"input": "x", "callback_url": url},
        headers={"Async-Mode": "true"},
    )
    body = assert_error(response, 422, "callback_url_refused")
    assert body["error"].startswith("callback_url is refused: ")
    assert [entry["field"] for entry in body["fields"]] == ["callback_url"]
    listed = await admin.client.get(f"/api/v1/deployments/{deployment['id']}/predictions")
    assert listed.json() == []
    for dry_run in ("false", "true"):
        created = await admin.client.post(
            f"/api/v1/clusters/{cluster}/deployments?dry_run={dry_run}",
            json={"name": "d", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}, "callback_url": url},
        )
        assert_error(created, 422, "callback_url_refused")
    assert (await admin.client.get(f"/api/v1/clusters/{cluster}/deployments")).json() == [
        deployment
    ]


async def test_a_callback_url_is_at_most_2048_characters(world: World) -> None:
    _, admin, _, deployment = await scene(world)
    url = "https://hooks.example.com/" + "a" * 2023
    response = await admin.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict",
        json={"input": "x", "callback_url": url},
        headers={"Async-Mode": "true"},
    )
    body = assert_error(response, 422, "validation_error")
    assert body["fields"][0]["field"] == "callback_url"


async def test_hosts_outside_the_allow_list_are_refused(
    app: FastAPI, app_factory: AppFactory, client_factory: ClientFactory
) -> None:
    served = app_factory(webhook_allowed_hosts="hooks.example.com, *.example.org")
    _, admin, _, deployment = await scene(World(lambda: client_factory(served)))
    for url in ("https://hooks.example.com/a", "https://ci.example.org/a"):
        await predict(admin, deployment["id"], callback_url=url)
    response = await admin.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict",
        json={"input": "x", "callback_url": "https://example.net/a"},
        headers={"Async-Mode": "true"},
    )
    body = assert_error(response, 422, "callback_url_refused")
    assert "WEBHOOK_ALLOWED_HOSTS" in body["error"]


async def test_callers_that_use_no_callback_see_the_bodies_they_always_had(world: World) -> None:
    _, admin, cluster, deployment = await scene(world)
    assert "callback_url" not in deployment
    fetched = await admin.client.get(f"/api/v1/deployments/{deployment['id']}")
    assert "callback_url" not in fetched.json()
    prediction_id = await predict(admin, deployment["id"])
    [listed] = (
        await admin.client.get(f"/api/v1/deployments/{deployment['id']}/predictions")
    ).json()
    assert set(listed) == {
        "prediction_id", "deployment_id", "model", "status", "input", "output", "error",
        "created_at", "completed_at",
    }  # fmt: skip
    assert await attempts_of(admin.client, prediction_id) == []
    hooked = await world.deployment(
        admin, cluster, callback_url="https://hooks.example.com/predictions"
    )
    assert hooked["callback_url"] == "https://hooks.example.com/predictions"
    with_callback = await predict(admin, hooked["id"])
    [pending] = (await admin.client.get(f"/api/v1/deployments/{hooked['id']}/predictions")).json()
    assert pending["prediction_id"] == with_callback
    assert pending["callback_url"] == "https://hooks.example.com/predictions"
    assert pending["webhook_state"] == "pending"


async def test_only_admins_see_the_secret_and_any_member_the_attempts(world: World) -> None:
    org, admin, _, deployment = await scene(world)
    developer, viewer = await world.user(), await world.user()
    await world.add_member(org, developer)
    await world.add_member(org, viewer, "viewer")
    secret = await secret_of(org)
    assert secret.startswith("whsec_")
    for member in (developer, viewer):
        for method, path in (("GET", "webhook-secret"), ("POST", "webhook-secret/rotate")):
            response = await member.client.request(method, f"/api/v1/organizations/{org.id}/{path}")
            assert_error(response, 403, "forbidden")
    prediction_id = await predict(admin, deployment["id"])
    assert await attempts_of(viewer.client, prediction_id) == []
    stranger = await world.user()
    response = await stranger.client.get(f"/api/v1/predictions/{prediction_id}/webhook-attempts")
    assert_error(response, 404, "prediction_not_found")
    assert await secret_of(org) == secret  # nothing rotated it
