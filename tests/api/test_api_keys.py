"""API keys: service accounts' credentials, scoped to one organization and one role, shown once,
stored hashed, refused at once when revoked or expired (in every process)."""

import asyncio
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from app.db.base import utcnow
from app.models.api_key import ApiKey
from app.models.user import User
from tests.support.api import PASSWORD, Org, World, assert_error
from tests.support.processes import free_port, service_env, start_api, stop


def keys_url(org: Org) -> str:
    return f"/api/v1/organizations/{org.id}/api-keys"


@pytest.mark.both_backends
async def test_the_secret_is_shown_once_and_stored_only_as_a_hash(
    app: FastAPI, world: World
) -> None:
    org = await world.org()
    key = await world.api_key(org, "developer", name="nightly-batch")
    assert key.secret.startswith("mlops_") and len(key.secret) == 6 + 43  # 256 bits, base64url
    assert key.body["prefix"] == key.secret[:14]
    assert key.body["name"] == "nightly-batch" and key.body["role"] == "developer"
    assert key.body["created_by"] == org.admin.id
    assert key.body["last_used_at"] is None and key.body["revoked_at"] is None
    listed = (await org.admin.client.get(keys_url(org))).json()
    assert [k["id"] for k in listed] == [key.id]
    assert "key" not in listed[0] and listed[0]["prefix"] == key.body["prefix"]
    async with app.state.sessionmaker() as db:
        row = await db.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(key.id)))
        assert row is not None
        assert row.key_hash == hashlib.sha256(key.secret.encode()).hexdigest()
        dumped = (await db.execute(text("SELECT * FROM api_keys"))).all()
    assert key.secret not in repr(dumped)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "role": "admin"}, "role"),
        ({"name": "k", "role": "owner"}, "role"),
        ({"name": "k", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "k", "role": "viewer", "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"name": "k", "role": "viewer", "expires_at": 4102444800}, "expires_at"),
        # in the future, but past the last moment UTC can say
        ({"name": "k", "role": "viewer", "expires_at": "9999-12-31T23:59:59-23:59"}, "expires_at"),
        ({"role": "viewer"}, "name"),
    ],
)
async def test_a_key_is_never_admin_and_expires_in_the_future(
    world: World, body: dict[str, Any], field: str
) -> None:
    org = await world.org()
    response = await org.admin.client.post(keys_url(org), json=body)
    error = assert_error(response, 422, "validation_error")
    assert field in {f["field"].split(".")[-1] for f in error["fields"]}, error


@pytest.mark.both_backends
async def test_a_key_acts_with_its_role_inside_its_organization(world: World) -> None:
    org = await world.org()
    cluster = await world.cluster(org, cpu=8)
    admins = await world.deployment(org.admin, cluster, cpu=1)
    developer = await world.api_key(org, "developer")
    viewer = await world.api_key(org, "viewer")

    created = await developer.client.post(
        f"/api/v1/clusters/{cluster}/deployments",
        json={"name": "by-key", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}},
    )
    assert created.status_code == 201, created.text
    mine = created.json()
    assert mine["created_by"] == developer.body["service_account_id"]
    predicted = await developer.client.post(
        f"/api/v1/deployments/{mine['id']}/predict",
        json={"input": "x"},
        headers={"Async-Mode": "true"},
    )
    assert predicted.status_code == 202, predicted.text
    # "Your own" is the key's own: not the admin who created the key.
    refused = await developer.client.post(f"/api/v1/deployments/{admins['id']}/complete")
    assert_error(refused, 403, "forbidden")
    completed = await developer.client.post(f"/api/v1/deployments/{mine['id']}/complete")
    assert completed.status_code == 200, completed.text

    assert (await viewer.client.get(f"/api/v1/clusters/{cluster}")).status_code == 200
    denied = await viewer.client.post(
        f"/api/v1/clusters/{cluster}/deployments",
        json={"name": "no", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}},
    )
    assert_error(denied, 403, "forbidden")
    for key in (developer, viewer):  # keys never manage keys: they are never admin
        assert_error(await key.client.get(keys_url(org)), 403, "forbidden")


async def test_a_key_is_an_outsider_to_every_other_organization(world: World) -> None:
    org, other = await world.org(), await world.org()
    cluster = await world.cluster(other)
    key = await world.api_key(org, "developer")
    assert_error(await key.client.get(f"/api/v1/clusters/{cluster}"), 404, "cluster_not_found")
    assert_error(
        await key.client.get(f"/api/v1/organizations/{other.id}"), 404, "organization_not_found"
    )
    listed = (await key.client.get("/api/v1/organizations")).json()
    assert [(o["id"], o["role"]) for o in listed] == [(org.id, "developer")]
    me = (await key.client.get("/api/v1/auth/me")).json()
    assert me["id"] == key.body["service_account_id"]
    assert [o["id"] for o in me["organizations"]] == [org.id]


async def test_routes_of_a_person_refuse_keys(world: World) -> None:
    org, other = await world.org(), await world.org()
    key = await world.api_key(org, "developer")
    for method, path, body in (
        ("POST", "/api/v1/organizations", {"name": "mine"}),
        ("POST", "/api/v1/organizations/join", {"invite_code": other.invite_code}),
        ("POST", "/api/v1/auth/logout", None),
        ("DELETE", "/api/v1/auth/sessions", None),
        ("POST", "/api/v1/auth/password", {"current_password": "x", "new_password": PASSWORD}),
    ):
        response = await key.client.request(method, path, json=body)
        assert_error(response, 403, "forbidden")
    members = (await other.admin.client.get(f"/api/v1/organizations/{other.id}/members")).json()
    assert [m["user_id"] for m in members] == [other.admin.id]  # the join did not happen


async def test_a_bearer_key_is_the_caller_even_beside_a_valid_cookie(world: World) -> None:
    org = await world.org()
    response = await org.admin.client.get(
        "/api/v1/auth/me", headers={"Authorization": "Bearer mlops_not-a-key"}
    )
    body = assert_error(response, 401, "not_authenticated")
    assert body["error"] == "The API key is not valid."


@pytest.mark.both_backends
async def test_a_bearer_token_that_is_not_a_key_leaves_the_cookie_in_charge(
    world: World,
) -> None:
    """A proxy or gateway in front of the service may send a bearer token of its own."""
    org = await world.org()
    response = await org.admin.client.get(
        "/api/v1/auth/me", headers={"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.proxy"}
    )
    assert response.status_code == 200 and response.json()["id"] == org.admin.id


async def test_two_revocations_at_once_write_one_audit_row(world: World) -> None:
    org = await world.org()
    key = await world.api_key(org)
    answers = await asyncio.gather(
        *(org.admin.client.delete(f"/api/v1/api-keys/{key.id}") for _ in range(4))
    )
    assert [a.status_code for a in answers] == [204] * 4
    audit = f"/api/v1/organizations/{org.id}/audit?action=api_key.revoked"
    assert len((await org.admin.client.get(audit)).json()) == 1


async def test_revoked_and_expired_keys_are_refused_on_the_next_request(
    app: FastAPI, world: World
) -> None:
    org = await world.org()
    revoked, expired = await world.api_key(org), await world.api_key(org)
    assert (await revoked.client.get("/api/v1/auth/me")).status_code == 200
    gone = await org.admin.client.delete(f"/api/v1/api-keys/{revoked.id}")
    assert gone.status_code == 204
    body = assert_error(await revoked.client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert body["error"] == "The API key was revoked."
    again = await org.admin.client.delete(f"/api/v1/api-keys/{revoked.id}")
    assert again.status_code == 204  # revoking is idempotent

    async with app.state.sessionmaker() as db:
        await db.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(expired.id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    body = assert_error(await expired.client.get("/api/v1/auth/me"), 401, "not_authenticated")
    assert body["error"].startswith("The API key expired at ")
    listed = {k["id"]: k for k in (await org.admin.client.get(keys_url(org))).json()}
    assert listed[revoked.id]["revoked_at"] is not None
    assert listed[revoked.id]["last_used_at"] is not None
    assert listed[expired.id]["revoked_at"] is None


async def test_keys_of_a_deleted_organization_go_with_their_service_accounts(
    app: FastAPI, world: World
) -> None:
    org = await world.org()
    key = await world.api_key(org)
    assert (await org.admin.client.delete(f"/api/v1/organizations/{org.id}")).status_code == 204
    assert_error(await key.client.get("/api/v1/auth/me"), 401, "not_authenticated")
    async with app.state.sessionmaker() as db:
        assert await db.get(User, uuid.UUID(key.body["service_account_id"])) is None
        assert await db.get(ApiKey, uuid.UUID(key.id)) is None


async def test_a_service_account_cannot_sign_in(world: World) -> None:
    org = await world.org()
    key = await world.api_key(org)
    me = (await key.client.get("/api/v1/auth/me")).json()
    response = await world.new_client().post(
        "/api/v1/auth/login", json={"username": me["username"], "password": key.secret}
    )
    assert_error(response, 401, "invalid_credentials")


async def test_rate_limits_are_keyed_by_the_key(
    app_factory: Any, client_factory: Any, world: World
) -> None:
    limited = app_factory(rate_limit_enabled=True, rate_limit_default="3/minute")
    org = await world.org()
    first, second = await world.api_key(org), await world.api_key(org)

    def client_of(secret: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {secret}"}
        built: httpx.AsyncClient = client_factory(limited, headers=headers)
        return built

    one, two = client_of(first.secret), client_of(second.secret)
    for _ in range(3):
        assert (await one.get("/api/v1/auth/me")).status_code == 200
    assert_error(await one.get("/api/v1/auth/me"), 429, "rate_limited")
    assert (await two.get("/api/v1/auth/me")).status_code == 200  # a budget of its own
    person = client_factory(limited, cookies=org.admin.client.cookies)
    assert (await person.get("/api/v1/auth/me")).status_code == 200  # and not its creator's


async def test_revocation_takes_effect_at_once_in_every_process(
    world: World, postgres_url: str, tmp_path: Path
) -> None:
    """Two `mlops serve` processes on one database: a key revoked through the first is refused
    by the second on its very next request (keys are looked up on every request, never cached)."""
    org = await world.org()
    key = await world.api_key(org)
    env = service_env(postgres_url, WORKER_IN_PROCESS="false")
    ports = [free_port(), free_port()]
    servers = [start_api(env, port, tmp_path / f"api{port}.log") for port in ports]
    try:
        first, second = (
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key.secret}"},
            )
            for port in ports
        )
        admin = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports[0]}",
            headers={"Cookie": f"session={org.admin.client.cookies['session']}"},
        )
        async with first, second, admin:
            assert (await second.get("/api/v1/auth/me")).status_code == 200
            assert (await first.get("/api/v1/auth/me")).status_code == 200
            revoked = await admin.delete(f"/api/v1/api-keys/{key.id}")
            assert revoked.status_code == 204
            assert (await second.get("/api/v1/auth/me")).status_code == 401
            assert (await first.get("/api/v1/auth/me")).status_code == 401
    finally:
        for server in servers:
            stop(server)
