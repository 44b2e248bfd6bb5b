"""The audit log: one row per state-changing action, in the action's own transaction, with who
(a person or an API key), what, on what, before and after, and the request id."""

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.models.audit import AuditEntry
from app.models.organization import Organization, Role
from app.scheduling import Resources
from app.services import audit
from app.services import clusters as cluster_service
from app.services.tenancy import Scoped
from tests.support.api import Org, World, assert_error


def audit_url(org: Org, query: str = "") -> str:
    return f"/api/v1/organizations/{org.id}/audit{query}"


async def entries(org: Org, query: str = "") -> list[dict[str, Any]]:
    response = await org.admin.client.get(audit_url(org, query))
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


@pytest.mark.both_backends
async def test_each_action_writes_one_row_with_its_actor_and_request_id(world: World) -> None:
    admin, dev, leaver = await world.user(), await world.user(), await world.user()
    org = await world.org(admin, developer=dev, developer2=leaver)
    members = f"/api/v1/organizations/{org.id}/members"
    assert (await admin.client.patch(f"{members}/{dev.id}", json={"role": "viewer"})).is_success
    assert (await admin.client.patch(f"{members}/{dev.id}", json={"role": "developer"})).is_success
    assert (await admin.client.post(f"/api/v1/organizations/{org.id}/invite-code")).is_success
    cluster = await world.cluster(org, cpu=4, name="gpu-pool")
    request_id = ("rq-" + uuid.uuid4().hex) * 4  # 140 characters: the longest kept is 128
    request_id = request_id[:128]
    renamed = await admin.client.patch(
        f"/api/v1/clusters/{cluster}",
        json={"name": "cpu-pool"},
        headers={"X-Request-ID": request_id},
    )
    assert renamed.is_success
    first = await world.deployment(dev, cluster, cpu=1)
    second = await world.deployment(dev, cluster, cpu=1)
    assert (await dev.client.post(f"/api/v1/deployments/{first['id']}/complete")).is_success
    assert (await admin.client.post(f"/api/v1/deployments/{second['id']}/cancel")).is_success
    key = await world.api_key(org, "viewer")
    assert (await admin.client.delete(f"/api/v1/api-keys/{key.id}")).status_code == 204
    assert (await admin.client.delete(f"/api/v1/clusters/{cluster}")).status_code == 204
    new_secret = await admin.client.post(f"/api/v1/organizations/{org.id}/webhook-secret/rotate")
    assert new_secret.status_code == 200
    assert (await leaver.client.delete(f"{members}/{leaver.id}")).status_code == 204
    assert (await admin.client.delete(f"{members}/{dev.id}")).status_code == 204

    rows = list(reversed(await entries(org)))  # newest first: oldest first to read along
    assert [(r["action"], r["actor_name"]) for r in rows] == [
        ("organization.created", admin.username),
        ("membership.joined", dev.username),
        ("membership.joined", leaver.username),
        ("membership.role_changed", admin.username),
        ("membership.role_changed", admin.username),
        ("organization.invite_rotated", admin.username),
        ("cluster.created", admin.username),
        ("cluster.updated", admin.username),
        ("deployment.created", dev.username),
        ("deployment.created", dev.username),
        ("deployment.completed", dev.username),
        ("deployment.cancelled", admin.username),
        ("api_key.created", admin.username),
        ("api_key.revoked", admin.username),
        ("cluster.deleted", admin.username),
        ("organization.webhook_secret_rotated", admin.username),
        ("membership.left", leaver.username),
        ("membership.removed", admin.username),
    ]
    assert {r["actor_type"] for r in rows} == {"user"}
    assert all(r["request_id"] for r in rows)
    by_action = {r["action"]: r for r in rows}
    updated = by_action["cluster.updated"]
    assert updated["request_id"] == request_id
    assert (updated["target_type"], updated["target_id"]) == ("cluster", cluster)
    assert updated["before"]["name"] == "gpu-pool" and updated["after"]["name"] == "cpu-pool"
    assert updated["after"]["resources"] == {"cpu": 4.0, "ram_gb": 16.0, "gpu": 0}
    demoted = rows[3]
    assert (demoted["before"]["role"], demoted["after"]["role"]) == ("developer", "viewer")
    assert demoted["target_id"] == dev.id
    rotated = by_action["organization.invite_rotated"]
    assert rotated["before"] is None and rotated["after"] is None  # the code itself is a secret
    assert by_action["api_key.created"]["after"]["prefix"] == key.body["prefix"]
    assert key.secret not in str(rows) and new_secret.json()["secret"] not in str(rows)


@pytest.mark.both_backends
async def test_an_api_key_is_the_actor_of_what_it_does(world: World) -> None:
    org = await world.org()
    cluster = await world.cluster(org)
    key = await world.api_key(org, "developer", name="ci-bot")
    deployment = await world.deployment(key, cluster)
    [row] = await entries(org, "?action=deployment.created")
    assert (row["actor_type"], row["actor_id"], row["actor_name"]) == ("api_key", key.id, "ci-bot")
    assert row["target_id"] == deployment["id"]
    assert [r["target_id"] for r in await entries(org, f"?actor_id={key.id}")] == [deployment["id"]]


async def test_filters_and_pages(world: World) -> None:
    org = await world.org()
    clusters = [await world.cluster(org) for _ in range(5)]
    everything = await entries(org)
    assert len(everything) == 6  # the organization, then five clusters
    created = await org.admin.client.get(audit_url(org, "?action=cluster.created&limit=2&offset=1"))
    assert created.headers["X-Total-Count"] == "5"
    assert [r["target_id"] for r in created.json()] == [clusters[3], clusters[2]]
    third = everything[2]["at"]
    since = await entries(org, f"?since={third.replace('+', '%2B')}")
    assert [r["id"] for r in since] == [r["id"] for r in everything[:3]]
    until = await entries(org, f"?until={third.replace('+', '%2B')}")
    assert [r["id"] for r in until] == [r["id"] for r in everything[3:]]
    assert await entries(org, f"?actor_id={uuid.uuid4()}") == []
    for bad in (
        "since=2026-01-01T00:00:00",
        "until=0.5",
        "until=1700000000",
        "since=0001-01-01T00:00:00%2B14:00",  # before the first moment UTC can say
    ):
        # naive, or a number (not ISO 8601 as published, though pydantic would take it)
        assert_error(await org.admin.client.get(audit_url(org, f"?{bad}")), 422, "validation_error")


async def test_refused_actions_leave_no_row(world: World) -> None:
    admin, viewer = await world.user(), await world.user()
    org = await world.org(admin, viewer=viewer)
    cluster = await world.cluster(org, cpu=2)
    await world.deployment(admin, cluster, cpu=1)
    before = len(await entries(org))
    refused = [
        await admin.client.delete(f"/api/v1/clusters/{cluster}"),  # 409 cluster_in_use
        await admin.client.patch(
            f"/api/v1/clusters/{cluster}", json={"resources": {"cpu": 0.5, "ram_gb": 16, "gpu": 0}}
        ),
        await viewer.client.post(f"/api/v1/organizations/{org.id}/invite-code"),  # 403
        await admin.client.patch(
            f"/api/v1/organizations/{org.id}/members/{admin.id}", json={"role": "viewer"}
        ),  # 409 last_admin
    ]
    assert [r.status_code for r in refused] == [409, 409, 403, 409]
    assert len(await entries(org)) == before


@pytest.mark.both_backends
async def test_the_row_is_written_by_the_action_s_own_transaction(
    app: FastAPI, world: World
) -> None:
    """The service adds its row before it commits: if the commit fails, neither the change nor
    its row exists; if it succeeds, both do."""
    org = await world.org()
    actor = audit.Actor("user", uuid.UUID(org.admin.id), org.admin.username)
    sessions = app.state.sessionmaker
    for fails in (True, False):
        async with sessions() as db:
            row = await db.get(Organization, uuid.UUID(org.id))
            assert row is not None
            access = Scoped(row, Role.admin, uuid.UUID(org.admin.id))
            if fails:

                async def commit_then_fail() -> None:
                    await db.flush()  # the rows reach the database, inside the transaction
                    raise ConnectionError("the connection dropped during COMMIT")

                db.commit = commit_then_fail  # type: ignore[method-assign]
            audit.act_as(actor)  # as the authentication dependency does for a request
            try:
                await cluster_service.create(db, access, "c", Resources(1000, 0, 0), None)
            except ConnectionError:
                assert fails
                await db.rollback()
            finally:
                audit.act_as(None)
        async with sessions() as db:
            count = await db.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "cluster.created")
            )
        assert count == (0 if fails else 1)
    assert len(await entries(org, "?action=cluster.created")) == 1


async def test_the_log_outlives_its_organization_and_no_route_changes_it(
    app: FastAPI, world: World
) -> None:
    org = await world.org()
    methods = {
        method
        for path, item in app.openapi()["paths"].items()
        if path.endswith("/audit")
        for method in item
    }
    assert methods == {"get"}
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        response = await org.admin.client.request(method, audit_url(org))
        assert_error(response, 405, "method_not_allowed")
    assert (await org.admin.client.delete(f"/api/v1/organizations/{org.id}")).status_code == 204
    async with app.state.sessionmaker() as db:
        actions = list(
            await db.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.organization_id == uuid.UUID(org.id))
                .order_by(AuditEntry.at)
            )
        )
    assert actions == ["organization.created", "organization.deleted"]


async def test_a_cancelled_prediction_is_audited(world: World) -> None:
    org = await world.org()
    cluster = await world.cluster(org)
    deployment = await world.deployment(org.admin, cluster)
    accepted = await org.admin.client.post(
        f"/api/v1/deployments/{deployment['id']}/predict",
        json={"input": "x"},
        headers={"Async-Mode": "true"},
    )
    prediction = accepted.json()["prediction_id"]  # queued: no worker runs in these tests
    cancelled = await org.admin.client.post(f"/api/v1/predictions/{prediction}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    [row] = await entries(org, "?action=prediction.cancelled")
    assert (row["target_type"], row["target_id"]) == ("prediction", prediction)
    assert row["after"] == {"deployment_id": deployment["id"]}
