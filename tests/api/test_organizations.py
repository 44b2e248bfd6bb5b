"""Organizations, invite codes, members and roles (on PostgreSQL and SQLite)."""

import httpx
import pytest

from tests.support.api import World, assert_error

pytestmark = pytest.mark.both_backends


async def test_creator_is_admin_and_sees_a_strong_invite_code(world: World) -> None:
    admin = await world.user()
    response = await admin.client.post("/api/v1/organizations", json={"name": "  Acme ML  "})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "invite_code", "role", "created_at"}
    assert body["name"] == "Acme ML"
    assert body["role"] == "admin"
    assert len(body["invite_code"]) >= 16


async def test_invite_code_is_shown_to_admins_only(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    assert (await admin.client.get(f"/api/v1/organizations/{org.id}")).json()["invite_code"]
    as_dev = (await dev.client.get(f"/api/v1/organizations/{org.id}")).json()
    assert as_dev["invite_code"] is None
    assert as_dev["role"] == "developer"


async def test_join_makes_a_developer_and_lists_show_the_callers_role(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin)
    joined = await dev.client.post(
        "/api/v1/organizations/join", json={"invite_code": org.invite_code}
    )
    assert joined.status_code == 200
    assert joined.json()["role"] == "developer"
    assert joined.json()["invite_code"] is None
    mine = await dev.client.get("/api/v1/organizations")
    assert [(o["id"], o["role"]) for o in mine.json()] == [(org.id, "developer")]
    assert mine.headers["X-Total-Count"] == "1"


async def test_join_twice_is_409_and_unknown_code_is_404(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    again = await dev.client.post(
        "/api/v1/organizations/join", json={"invite_code": org.invite_code}
    )
    assert_error(again, 409, "already_member")
    unknown = await dev.client.post("/api/v1/organizations/join", json={"invite_code": "nope" * 5})
    assert_error(unknown, 404, "invite_code_not_found")


async def test_rotating_the_invite_code_retires_the_old_one(world: World) -> None:
    admin, late = await world.user(), await world.user()
    org = await world.org(admin)
    rotated = await admin.client.post(f"/api/v1/organizations/{org.id}/invite-code")
    assert rotated.status_code == 200
    new_code = rotated.json()["invite_code"]
    assert new_code != org.invite_code and len(new_code) >= 16
    old = await late.client.post(
        "/api/v1/organizations/join", json={"invite_code": org.invite_code}
    )
    assert_error(old, 404, "invite_code_not_found")
    new = await late.client.post("/api/v1/organizations/join", json={"invite_code": new_code})
    assert new.status_code == 200


async def test_members_are_listed_in_join_order_with_paging(world: World) -> None:
    admin, dev, viewer = await world.user(), await world.user(), await world.user()
    org = await world.org(admin, developer=dev, viewer=viewer)
    members = await viewer.client.get(f"/api/v1/organizations/{org.id}/members")
    assert members.status_code == 200
    assert [(m["user_id"], m["role"]) for m in members.json()] == [
        (admin.id, "admin"),
        (dev.id, "developer"),
        (viewer.id, "viewer"),
    ]
    assert set(members.json()[0]) == {"user_id", "username", "role", "joined_at"}
    page = await viewer.client.get(
        f"/api/v1/organizations/{org.id}/members", params={"limit": 1, "offset": 1}
    )
    assert [m["user_id"] for m in page.json()] == [dev.id]
    assert page.headers["X-Total-Count"] == "3"
    beyond = await viewer.client.get(f"/api/v1/organizations/{org.id}/members?offset=10")
    assert beyond.json() == []


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "offset=-1", "limit=abc"])
async def test_out_of_range_paging_is_422(world: World, query: str) -> None:
    admin = await world.user()
    org = await world.org(admin)
    for path in ("/api/v1/organizations", f"/api/v1/organizations/{org.id}/members"):
        body = assert_error(await admin.client.get(f"{path}?{query}"), 422, "validation_error")
        assert body["fields"][0]["field"] in ("limit", "offset")


async def test_empty_list_is_an_empty_array(world: World) -> None:
    loner = await world.user()
    response = await loner.client.get("/api/v1/organizations")
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"


async def test_admin_changes_roles(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    changed = await admin.client.patch(
        f"/api/v1/organizations/{org.id}/members/{dev.id}", json={"role": "admin"}
    )
    assert changed.status_code == 200
    assert changed.json()["role"] == "admin"
    assert changed.json()["username"] == dev.username
    me = await dev.client.get("/api/v1/auth/me")
    assert me.json()["organizations"][0]["role"] == "admin"


async def test_unknown_role_is_422(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    response = await admin.client.patch(
        f"/api/v1/organizations/{org.id}/members/{dev.id}", json={"role": "owner"}
    )
    assert assert_error(response, 422, "validation_error")["fields"][0]["field"] == "role"


async def test_last_admin_cannot_be_demoted_or_removed(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    base = f"/api/v1/organizations/{org.id}/members/{admin.id}"
    assert_error(await admin.client.patch(base, json={"role": "viewer"}), 409, "last_admin")
    assert_error(await admin.client.delete(base), 409, "last_admin")
    await admin.client.patch(
        f"/api/v1/organizations/{org.id}/members/{dev.id}", json={"role": "admin"}
    )
    demoted = await admin.client.patch(base, json={"role": "viewer"})
    assert demoted.status_code == 200


async def test_members_can_leave_and_admins_can_remove(world: World) -> None:
    admin, dev, viewer = await world.user(), await world.user(), await world.user()
    org = await world.org(admin, developer=dev, viewer=viewer)
    left = await viewer.client.delete(f"/api/v1/organizations/{org.id}/members/{viewer.id}")
    assert left.status_code == 204
    assert_error(
        await viewer.client.get(f"/api/v1/organizations/{org.id}"), 404, "organization_not_found"
    )
    removed = await admin.client.delete(f"/api/v1/organizations/{org.id}/members/{dev.id}")
    assert removed.status_code == 204
    members = await admin.client.get(f"/api/v1/organizations/{org.id}/members")
    assert [m["user_id"] for m in members.json()] == [admin.id]


async def test_unknown_or_malformed_member_is_404(world: World) -> None:
    admin, stranger = await world.user(), await world.user()
    org = await world.org(admin)
    for user_id in (stranger.id, "not-a-uuid"):
        response = await admin.client.patch(
            f"/api/v1/organizations/{org.id}/members/{user_id}", json={"role": "viewer"}
        )
        assert_error(response, 404, "member_not_found")


async def test_delete_organization_removes_it_for_everyone(world: World) -> None:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    assert (await admin.client.delete(f"/api/v1/organizations/{org.id}")).status_code == 204
    for user in (admin, dev):
        assert_error(
            await user.client.get(f"/api/v1/organizations/{org.id}"), 404, "organization_not_found"
        )
        assert (await user.client.get("/api/v1/organizations")).json() == []


async def test_malformed_org_id_is_404_not_422(world: World) -> None:
    admin = await world.user()
    for bad in ("not-a-uuid", "123", "%20"):
        response = await admin.client.get(f"/api/v1/organizations/{bad}")
        assert_error(response, 404, "organization_not_found")


async def test_organization_names_are_not_unique(world: World) -> None:
    first, second = await world.user(), await world.user()
    for user in (first, second):
        created = await user.client.post("/api/v1/organizations", json={"name": "Same"})
        assert created.status_code == 201


async def test_a_user_can_belong_to_several_organizations(world: World) -> None:
    a, b, member = await world.user(), await world.user(), await world.user()
    first = await world.org(a, developer=member)
    second = await world.org(b, viewer=member)
    mine = (await member.client.get("/api/v1/organizations")).json()
    assert [(o["id"], o["role"]) for o in mine] == [(first.id, "developer"), (second.id, "viewer")]


async def test_list_is_ordered_oldest_first(client: httpx.AsyncClient, world: World) -> None:
    admin = await world.user()
    ids = [
        (await admin.client.post("/api/v1/organizations", json={"name": f"org {i}"})).json()["id"]
        for i in range(3)
    ]
    assert [o["id"] for o in (await admin.client.get("/api/v1/organizations")).json()] == ids
