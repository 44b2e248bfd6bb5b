"""Scheduling insight over HTTP, on PostgreSQL and SQLite: why a deployment is pending, when it
would start, what a dry run says, protection from eviction and the end of runs at their maximum
runtime (the sweeper, called here with the time it would run at)."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from app.services import runtime_sweeper
from tests.api.test_scheduling import Cluster
from tests.support.api import World, assert_error

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def make_cluster(world: World) -> Any:
    async def build(cpu: float = 4, **extra: Any) -> Cluster:
        admin, dev = await world.user(), await world.user()
        org = await world.org(admin, developer=dev)
        cluster_id = await world.cluster(org, cpu=cpu, ram_gb=64, gpu=2, **extra)
        return Cluster(world, org, dev, cluster_id)

    return build


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def sweep(app: FastAPI, when: datetime) -> runtime_sweeper.Swept:
    return await runtime_sweeper.sweep(app.state.sessionmaker, now=when)


async def test_a_pending_deployment_says_what_is_missing_and_that_preemption_cannot_help(
    make_cluster: Any,
) -> None:
    c = await make_cluster(cpu=4)
    high = await c.submit("high", cpu=3, priority=9)
    first = await c.submit("first", cpu=2, priority=5)
    second = await c.submit("second", cpu=2, gpu=1, priority=5)
    assert high["pending"] is None and high["estimated_start_at"] is None
    why = second["pending"]
    assert why["reason"] == "insufficient_resources"
    assert why["missing"] == {"cpu": 1.0, "ram_gb": 0.0, "gpu": 0}
    assert why["ahead"] == 1 and why["ahead_ids"] == [first["id"]]
    assert why["fits_if_lower_priority_evicted"] is False
    assert why["preemption_can_help"] is False
    assert "preemption cannot help" in why["message"]
    assert second["estimated_start_at"] is None  # `high` runs without a deadline
    assert (await c.get(second))["pending"] == why


async def test_a_deployment_that_may_not_preempt_says_so(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2)
    await c.submit("low", cpu=2, priority=1)
    polite = await c.submit("polite", cpu=2, priority=5, preemption_policy="never")
    assert polite["pending"]["reason"] == "preemption_not_allowed"
    assert polite["pending"]["fits_if_lower_priority_evicted"] is True
    assert polite["pending"]["preemption_can_help"] is False


async def test_dependencies_are_named(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    base = await c.submit("base", cpu=1)
    after = await c.submit("after", cpu=1, depends_on=[base["id"]])
    assert after["pending"]["reason"] == "waiting_for_dependencies"
    assert after["pending"]["unmet_dependencies"] == [base["id"]]
    assert after["estimated_start_at"] is None


async def test_a_run_reaching_its_max_runtime_is_completed_and_the_estimate_holds(
    make_cluster: Any, app: FastAPI
) -> None:
    c = await make_cluster(cpu=4)
    batch = await c.submit("batch", cpu=3, max_runtime_seconds=600)
    assert batch["max_runtime_seconds"] == 600
    stops_at = at(batch["stops_at"])
    assert stops_at - at(batch["started_at"]) == timedelta(seconds=600)
    waiting = await c.submit("waiting", cpu=2)
    assert at(waiting["estimated_start_at"]) == stops_at
    assert (await sweep(app, stops_at - timedelta(seconds=1))).completed == 0
    assert (await sweep(app, stops_at)).completed == 1
    done = await c.get(batch)
    assert (done["status"], done["status_reason"]) == ("completed", "max_runtime_reached")
    assert done["stops_at"] is None
    last = (await c.events(batch))[-1]
    assert last["type"] == "completed"
    assert last["detail"] == {"reason": "max_runtime_reached", "after": 600}
    assert (await c.get(waiting))["status"] == "running"
    assert (await sweep(app, stops_at + timedelta(hours=1))).completed == 0  # once only


async def test_a_protected_deployment_is_not_evicted_until_its_protection_ends(
    make_cluster: Any, app: FastAPI
) -> None:
    c = await make_cluster(cpu=4)
    low = await c.submit("low", cpu=3, priority=1, min_runtime_seconds=300)
    ends = at(low["protected_until"])
    assert ends - at(low["started_at"]) == timedelta(seconds=300)
    high = await c.submit("high", cpu=3, priority=9)
    assert high["status"] == "pending"
    why = high["pending"]
    assert why["reason"] == "waiting_for_protection"
    assert at(why["protection_ends_at"]) == ends
    assert str(ends.year) in why["message"]
    assert at(high["estimated_start_at"]) == ends
    assert (await c.get(low))["status"] == "running"
    assert (await sweep(app, ends - timedelta(seconds=1))).clusters_rescheduled == 0
    assert (await sweep(app, ends)).clusters_rescheduled == 1
    assert await c.statuses(low, high) == ["pending", "running"]
    assert (await c.get(low))["status_reason"] == "preempted"
    state = await c.state()
    assert state["allocated"]["cpu"] == 3 and state["running_count"] == 1


async def test_protection_is_per_run_and_spares_only_the_protected(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    shielded = await c.submit("shielded", cpu=2, priority=1, min_runtime_seconds=300)
    bare = await c.submit("bare", cpu=2, priority=1)
    high = await c.submit("high", cpu=2, priority=9)
    assert high["status"] == "running"
    assert await c.statuses(shielded, bare) == ["running", "pending"]


async def test_a_dry_run_answers_what_the_creation_then_does_and_writes_nothing(
    make_cluster: Any,
) -> None:
    c = await make_cluster(cpu=4)
    low = await c.submit("low", cpu=3, priority=1)
    before = await c.state()
    events_before = await c.events(low)
    body = {"name": "high", "resources": {"cpu": 3, "ram_gb": 0, "gpu": 0}, "priority": 9}
    url = f"/api/v1/clusters/{c.id}/deployments"
    rehearsal = await c.dev.client.post(f"{url}?dry_run=true", json=body)
    assert rehearsal.status_code == 200, rehearsal.text
    said = rehearsal.json()
    assert said["dry_run"] is True and said["would_start"] is True
    assert said["status"] == "running" and said["queue_position"] is None
    assert said["evicts"] == [
        {"id": low["id"], "name": "low", "priority": 1, "preempted_by": str(_nil())}
    ]
    assert await c.state() == before
    assert await c.events(low) == events_before
    assert (await c.get(low))["status"] == "running"
    listed = await c.dev.client.get(url)
    assert [d["name"] for d in listed.json()] == ["low"]

    created = await c.dev.client.post(url, json=body)
    assert created.status_code == 201
    assert created.json()["status"] == "running"
    assert (await c.get(low))["status"] == "pending"


async def test_a_dry_run_of_a_deployment_that_would_wait(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2)
    await c.submit("big", cpu=2, priority=9, max_runtime_seconds=60)
    url = f"/api/v1/clusters/{c.id}/deployments?dry_run=true"
    body = {"name": "next", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}, "priority": 3}
    said = (await c.dev.client.post(url, json=body)).json()
    assert said["would_start"] is False and said["status"] == "pending"
    assert said["queue_position"] == 1 and said["evicts"] == []
    assert said["pending"]["reason"] == "insufficient_resources"
    assert said["estimated_start_at"] is not None


async def test_a_dry_run_validates_like_a_creation_and_viewers_may_not(
    make_cluster: Any, world: World
) -> None:
    c = await make_cluster(cpu=2)
    url = f"/api/v1/clusters/{c.id}/deployments?dry_run=true"
    big = {"name": "x", "resources": {"cpu": 3, "ram_gb": 0, "gpu": 0}}
    assert_error(await c.dev.client.post(url, json=big), 422, "exceeds_cluster_capacity")
    viewer = await world.user()
    await world.add_member(c.org, viewer, role="viewer")
    small = {"name": "x", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}}
    assert_error(await viewer.client.post(url, json=small), 403, "forbidden")


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_runtime_seconds", 0), ("max_runtime_seconds", -1), ("max_runtime_seconds", "60")],
)
async def test_runtime_limits_are_validated(make_cluster: Any, field: str, value: Any) -> None:
    c = await make_cluster(cpu=2)
    body = {"name": "x", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}, field: value}
    response = await c.dev.client.post(f"/api/v1/clusters/{c.id}/deployments", json=body)
    assert_error(response, 422, "validation_error")


def _nil() -> str:
    return "00000000-0000-0000-0000-000000000000"


def metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


async def test_metrics_count_real_decisions_only(make_cluster: Any, app: FastAPI) -> None:
    c = await make_cluster(cpu=4)
    started = 'mlops_scheduling_decisions_total{decision="started"}'
    starts = "mlops_deployment_time_to_start_seconds_count"
    avoided = "mlops_evictions_avoided_by_protection_total"
    reached = "mlops_runs_max_runtime_reached_total"
    before = (await c.dev.client.get("/metrics")).text
    low = await c.submit("low", cpu=3, priority=1, min_runtime_seconds=60, max_runtime_seconds=90)
    body = {"name": "high", "resources": {"cpu": 3, "ram_gb": 0, "gpu": 0}, "priority": 9}
    url = f"/api/v1/clusters/{c.id}/deployments"
    assert (await c.dev.client.post(f"{url}?dry_run=true", json=body)).status_code == 200
    middle = (await c.dev.client.get("/metrics")).text
    assert metric(middle, started) == metric(before, started) + 1  # the dry run is not counted
    assert metric(middle, starts) == metric(before, starts) + 1
    assert metric(middle, avoided) == metric(before, avoided)
    high = (await c.dev.client.post(url, json=body)).json()
    assert high["pending"]["reason"] == "waiting_for_protection"
    after = (await c.dev.client.get("/metrics")).text
    assert metric(after, avoided) == metric(before, avoided) + 1
    assert metric(after, 'mlops_pending_deployments{reason="waiting_for_protection"}') >= 1
    await sweep(app, at(low["stops_at"]))
    swept = (await c.dev.client.get("/metrics")).text
    assert metric(swept, reached) == metric(before, reached) + 1
    assert metric(swept, starts) == metric(before, starts) + 2  # high's first start


async def test_a_deployment_read_alone_and_in_a_listing_says_the_same(make_cluster: Any) -> None:
    """A single read takes a shortcut (one aggregate instead of the running set) when nothing
    in the cluster is protected, timed or leaving; a listing always loads the running set."""
    c = await make_cluster(cpu=4)
    base = await c.submit("base", cpu=2, priority=3)
    await c.submit("second", cpu=1, gpu=1, priority=1)
    waiting = [
        await c.submit("big", cpu=3, priority=2),
        await c.submit("polite", cpu=2, priority=5, preemption_policy="never"),
        await c.submit("after", cpu=1, depends_on=[base["id"]]),
    ]
    listed = {
        d["id"]: d for d in (await c.dev.client.get(f"/api/v1/clusters/{c.id}/deployments")).json()
    }
    for deployment in waiting:
        alone = await c.get(deployment)
        assert alone["pending"] is not None
        assert alone["pending"] == listed[deployment["id"]]["pending"]
    reasons = {listed[d["id"]]["pending"]["reason"] for d in waiting}
    assert reasons == {
        "insufficient_resources",
        "preemption_not_allowed",
        "waiting_for_dependencies",
    }
