"""Graceful preemption over HTTP, on PostgreSQL and SQLite: with a cluster's
`preemption_grace_seconds`, victims enter `preempting` (holding their resources, refusing new
predictions) until their time is over, the room their preemptor needs beyond them is reserved, and
the sweeper then requeues them and starts the preemptor."""

from datetime import datetime, timedelta

import pytest
from fastapi import FastAPI

from app.services import runtime_sweeper
from tests.api.test_scheduling import Cluster
from tests.support.api import World, assert_error

pytestmark = pytest.mark.both_backends


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
async def graceful(world: World) -> Cluster:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    cluster_id = await world.cluster(org, cpu=4, ram_gb=8, gpu=0, preemption_grace_seconds=60)
    return Cluster(world, org, dev, cluster_id)


async def test_a_victim_leaves_after_its_grace_and_its_preemptor_starts_then(
    graceful: Cluster, app: FastAPI
) -> None:
    c = graceful
    low = await c.submit("low", cpu=2, priority=1)
    keep = await c.submit("keep", cpu=1, priority=5)
    high = await c.submit("high", cpu=3, priority=9)
    assert high["status"] == "pending"
    leaving = await c.get(low)
    assert leaving["status"] == "preempting"
    assert leaving["preempted_by"] == high["id"]
    evict_at = at(leaving["evict_at"])
    assert evict_at - at(high["created_at"]) <= timedelta(seconds=61)
    assert high["pending"]["reason"] == "waiting_for_preemption"
    assert at(high["pending"]["victims_leave_at"]) == evict_at
    assert at(high["estimated_start_at"]) == evict_at
    event = (await c.events(low))[-1]
    assert event["type"] == "preempting"
    assert event["detail"]["preempted_by"] == high["id"]
    state = await c.state()
    assert state["allocated"]["cpu"] == 3  # the victim still holds its resources
    assert (state["running_count"], state["preempting_count"], state["pending_count"]) == (1, 1, 1)

    # The free core is reserved for `high`: a newcomer that would fit in it waits.
    tiny = await c.submit("tiny", cpu=1, priority=0)
    assert tiny["status"] == "pending" and tiny["pending"]["reason"] == "insufficient_resources"
    # A leaving deployment takes no new predictions.
    response = await c.dev.client.post(
        f"/api/v1/deployments/{low['id']}/predict", json={"input": "hi"}
    )
    assert_error(response, 409, "deployment_not_running")

    swept = await runtime_sweeper.sweep(app.state.sessionmaker, now=evict_at - timedelta(seconds=1))
    assert swept.evicted == 0
    swept = await runtime_sweeper.sweep(app.state.sessionmaker, now=evict_at)
    assert swept.evicted == 1
    assert await c.statuses(low, keep, high, tiny) == ["pending", "running", "running", "pending"]
    back = await c.get(low)
    assert (back["status_reason"], back["preemption_count"]) == ("preempted", 1)
    assert back["evict_at"] is None and back["preempted_by"] is None
    assert [e["type"] for e in await c.events(low)][-3:] == ["preempting", "preempted", "requeued"]
    state = await c.state()
    assert state["allocated"]["cpu"] == 4
    assert (state["running_count"], state["preempting_count"]) == (2, 0)


async def test_completing_a_leaving_deployment_lets_its_preemptor_start_at_once(
    graceful: Cluster,
) -> None:
    c = graceful
    low = await c.submit("low", cpu=3, priority=1)
    high = await c.submit("high", cpu=3, priority=9)
    assert (await c.get(low))["status"] == "preempting"
    done = await c.act(low, "complete")
    assert done["status"] == "completed" and done["evict_at"] is None
    assert (await c.get(high))["status"] == "running"
    state = await c.state()
    assert (state["running_count"], state["preempting_count"], state["pending_count"]) == (1, 0, 0)


async def test_a_dry_run_during_a_grace_and_the_grace_setting(
    graceful: Cluster, world: World
) -> None:
    c = graceful
    await c.submit("low", cpu=3, priority=1)
    url = f"/api/v1/clusters/{c.id}/deployments"
    body = {"name": "high", "resources": {"cpu": 3, "ram_gb": 0, "gpu": 0}, "priority": 9}
    said = (await c.dev.client.post(f"{url}?dry_run=true", json=body)).json()
    assert said["would_start"] is False and said["status"] == "pending"
    assert [v["name"] for v in said["evicts"]] == ["low"]
    assert said["pending"]["reason"] == "waiting_for_preemption"
    assert (await c.state())["preempting_count"] == 0
    patched = await c.org.admin.client.patch(
        f"/api/v1/clusters/{c.id}", json={"preemption_grace_seconds": 0}
    )
    assert patched.status_code == 200 and patched.json()["preemption_grace_seconds"] == 0
    now_immediate = (await c.dev.client.post(url, json=body)).json()
    assert now_immediate["status"] == "running"
    too_long = await c.org.admin.client.patch(
        f"/api/v1/clusters/{c.id}", json={"preemption_grace_seconds": 86_401}
    )
    assert_error(too_long, 422, "validation_error")


async def test_a_cluster_with_a_leaving_deployment_is_in_use(graceful: Cluster) -> None:
    c = graceful
    low = await c.submit("low", cpu=3, priority=1)
    high = await c.submit("high", cpu=3, priority=9)
    await c.act(high, "cancel")
    assert (await c.get(low))["status"] == "preempting"
    response = await c.org.admin.client.delete(f"/api/v1/clusters/{c.id}")
    assert_error(response, 409, "cluster_in_use")


async def test_capacity_cannot_shrink_into_what_is_reserved_for_a_preemptor(
    graceful: Cluster,
) -> None:
    c = graceful
    await c.submit("low", cpu=2, priority=1)
    await c.submit("high", cpu=3, priority=9)  # low leaves in a minute; 1 free core is held
    state = await c.state()
    assert state["allocated"]["cpu"] == 2 and state["preempting_count"] == 1
    url = f"/api/v1/clusters/{c.id}"
    body = {"capacity": {"cpu": 2, "ram_gb": 8, "gpu": 0}}
    assert_error(await c.org.admin.client.patch(url, json=body), 409, "capacity_below_allocated")
    body = {"capacity": {"cpu": 3, "ram_gb": 8, "gpu": 0}}
    assert (await c.org.admin.client.patch(url, json=body)).status_code == 200


async def test_cancelling_a_waiting_preemptor_frees_its_reservation_at_once(
    graceful: Cluster,
) -> None:
    c = graceful
    await c.submit("keep", cpu=1, priority=5)
    low = await c.submit("low", cpu=2, priority=1)
    high = await c.submit("high", cpu=3, priority=9)
    small = await c.submit("small", cpu=1, priority=0)
    assert small["status"] == "pending"  # the free core is held for `high`
    await c.act(high, "cancel")
    assert await c.statuses(low, small) == ["preempting", "running"]
