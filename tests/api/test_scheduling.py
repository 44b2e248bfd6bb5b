"""The contract's "Scheduling semantics", rule by rule, over HTTP (on PostgreSQL and SQLite)."""

from typing import Any

import pytest

from tests.support.api import Org, User, World, assert_error

pytestmark = pytest.mark.both_backends


class Cluster:
    """One organization, one developer and a cluster, with terse helpers for scenarios."""

    def __init__(self, world: World, org: Org, dev: User, cluster_id: str) -> None:
        self.world, self.org, self.dev, self.id = world, org, dev, cluster_id

    async def submit(
        self, name: str, cpu: float = 0, ram_gb: float = 0, gpu: int = 0, **kw: Any
    ) -> dict[str, Any]:
        return await self.world.deployment(
            self.dev, self.id, cpu=cpu, ram_gb=ram_gb, gpu=gpu, name=name, **kw
        )

    async def get(self, deployment: dict[str, Any]) -> dict[str, Any]:
        response = await self.dev.client.get(f"/api/v1/deployments/{deployment['id']}")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    async def statuses(self, *deployments: dict[str, Any]) -> list[str]:
        return [(await self.get(d))["status"] for d in deployments]

    async def act(self, deployment: dict[str, Any], action: str) -> dict[str, Any]:
        response = await self.dev.client.post(f"/api/v1/deployments/{deployment['id']}/{action}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def state(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.dev.client.get(f"/api/v1/clusters/{self.id}")).json()
        return body

    async def events(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.dev.client.get(f"/api/v1/deployments/{deployment['id']}/events")
        events: list[dict[str, Any]] = response.json()
        return events


@pytest.fixture
async def make_cluster(world: World) -> Any:
    async def build(cpu: float = 4, ram_gb: float = 16, gpu: int = 0, **extra: Any) -> Cluster:
        admin, dev = await world.user(), await world.user()
        org = await world.org(admin, developer=dev)
        cluster_id = await world.cluster(org, cpu=cpu, ram_gb=ram_gb, gpu=gpu, **extra)
        return Cluster(world, org, dev, cluster_id)

    return build


async def test_a_deployment_that_fits_runs_at_once(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    d = await c.submit("a", cpu=1.5, ram_gb=2)
    assert d["status"] == "running"
    assert d["status_reason"] is None and d["queue_position"] is None
    assert d["started_at"] is not None
    state = await c.state()
    assert state["allocated"] == {"cpu": 1.5, "ram_gb": 2, "gpu": 0}
    assert state["available"] == {"cpu": 2.5, "ram_gb": 14, "gpu": 0}
    assert (state["running_count"], state["pending_count"]) == (1, 0)
    assert [e["type"] for e in await c.events(d)] == ["created", "scheduled"]


async def test_arithmetic_is_exact(make_cluster: Any) -> None:
    c = await make_cluster(cpu=0.3)
    await c.submit("a", cpu=0.1)
    await c.submit("b", cpu=0.2)
    state = await c.state()
    assert state["allocated"]["cpu"] == 0.3
    assert state["available"]["cpu"] == 0


async def test_one_victim_is_evicted_for_a_higher_priority(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    low = await c.submit("low", cpu=3, priority=1)
    high = await c.submit("high", cpu=2, priority=5)
    assert high["status"] == "running"
    victim = await c.get(low)
    assert victim["status"] == "pending"
    assert victim["status_reason"] == "preempted"
    assert victim["preemption_count"] == 1
    # `started_at` is the start of the current or last run (docs/API.md): a preempted deployment
    # keeps the start of the run it was evicted from until it runs again.
    assert victim["started_at"] == low["started_at"] is not None
    assert victim["serving"] is None  # only running deployments have a serving state
    events = await c.events(low)
    assert [e["type"] for e in events] == ["created", "scheduled", "preempted", "requeued"]
    assert events[2]["detail"] == {"preempted_by": high["id"]}
    assert events[3]["detail"] == {}


async def test_several_victims_lowest_priority_first(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    p1 = await c.submit("p1", cpu=1, priority=1)
    p2 = await c.submit("p2", cpu=1, priority=2)
    p3 = await c.submit("p3", cpu=1, priority=3)
    p4 = await c.submit("p4", cpu=1, priority=4)
    big = await c.submit("big", cpu=2, priority=9)
    assert big["status"] == "running"
    assert await c.statuses(p1, p2, p3, p4) == ["pending", "pending", "running", "running"]


async def test_kube_scheduler_reprieve_picks_a_and_c(make_cluster: Any) -> None:
    c = await make_cluster(cpu=7)
    a = await c.submit("A", cpu=2, priority=1)
    b = await c.submit("B", cpu=2, priority=2)
    cc = await c.submit("C", cpu=3, priority=3)
    new = await c.submit("new", cpu=5, priority=10)
    assert new["status"] == "running"
    assert await c.statuses(a, b, cc) == ["pending", "running", "pending"]


async def test_equal_or_higher_priority_is_never_evicted(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2)
    same = await c.submit("same", cpu=1, priority=5)
    higher = await c.submit("higher", cpu=1, priority=7)
    waiting = await c.submit("waiting", cpu=1, priority=5)
    assert waiting["status"] == "pending"
    assert waiting["status_reason"] == "insufficient_resources"
    assert waiting["queue_position"] == 1
    assert await c.statuses(same, higher) == ["running", "running"]


async def test_never_policy_does_not_evict_but_can_be_evicted(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2)
    low = await c.submit("low", cpu=2, priority=1)
    polite = await c.submit("polite", cpu=2, priority=5, preemption_policy="never")
    assert polite["status"] == "pending"
    assert (await c.get(low))["status"] == "running"
    await c.act(low, "complete")
    assert (await c.get(polite))["status"] == "running"
    boss = await c.submit("boss", cpu=2, priority=9)
    assert boss["status"] == "running"
    assert (await c.get(polite))["status_reason"] == "preempted"


async def test_strategy_none_never_evicts(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2, preemption_strategy="none")
    low = await c.submit("low", cpu=2, priority=1)
    high = await c.submit("high", cpu=2, priority=9)
    assert high["status"] == "pending"
    assert (await c.get(low))["status"] == "running"


async def test_victim_is_requeued_and_resumes_when_room_returns(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    low = await c.submit("low", cpu=3, priority=1)
    high = await c.submit("high", cpu=3, priority=5)
    assert (await c.get(low))["status"] == "pending"
    await c.act(high, "complete")
    resumed = await c.get(low)
    assert resumed["status"] == "running"
    assert resumed["status_reason"] is None
    assert resumed["preemption_count"] == 1
    types = [e["type"] for e in await c.events(low)]
    assert types == ["created", "scheduled", "preempted", "requeued", "scheduled"]


async def test_backfill_lets_small_deployments_pass_a_large_one(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    blocker = await c.submit("blocker", cpu=3)
    large = await c.submit("large", cpu=3, priority=5, preemption_policy="never")
    small = await c.submit("small", cpu=1)
    assert large["status"] == "pending"
    assert small["status"] == "running"
    await c.act(blocker, "complete")
    assert (await c.get(large))["status"] == "running"


@pytest.mark.parametrize(
    ("capacity", "first", "second"),
    [
        ({"cpu": 100, "ram_gb": 8, "gpu": 0}, {"cpu": 1, "ram_gb": 6}, {"cpu": 1, "ram_gb": 4}),
        ({"cpu": 100, "ram_gb": 100, "gpu": 2}, {"cpu": 1, "gpu": 2}, {"cpu": 1, "gpu": 1}),
    ],
    ids=["ram-bound", "gpu-bound"],
)
async def test_ram_and_gpu_bound_preemption(
    make_cluster: Any, capacity: dict[str, Any], first: dict[str, Any], second: dict[str, Any]
) -> None:
    c = await make_cluster(**capacity)
    low = await c.submit("low", priority=1, **first)
    waiting = await c.submit("waiting", priority=1, **second)
    assert waiting["status"] == "pending"
    high = await c.submit("high", priority=3, **second)
    assert high["status"] == "running"
    assert (await c.get(low))["status"] == "pending"
    assert (await c.get(waiting))["status"] in ("running", "pending")
    state = await c.state()
    for key in ("cpu", "ram_gb", "gpu"):
        assert state["allocated"][key] <= capacity[key]


async def test_queue_positions_follow_scheduling_order(make_cluster: Any) -> None:
    c = await make_cluster(cpu=1)
    await c.submit("runner", cpu=1, priority=100)
    first_low = await c.submit("low-1", cpu=1, priority=1)
    second_low = await c.submit("low-2", cpu=1, priority=1)
    mid = await c.submit("mid", cpu=1, priority=5, preemption_policy="never")
    positions = [(await c.get(d))["queue_position"] for d in (mid, first_low, second_low)]
    assert positions == [1, 2, 3]
    listed = await c.dev.client.get(f"/api/v1/clusters/{c.id}/deployments?status=pending")
    assert [d["queue_position"] for d in listed.json()] == [2, 3, 1]
    assert listed.headers["X-Total-Count"] == "3"


async def test_dependency_chain_across_two_clusters_runs_in_order(
    world: World, make_cluster: Any
) -> None:
    c = await make_cluster(cpu=4)
    other = await world.cluster(c.org, cpu=4)
    a = await c.submit("A", cpu=1)
    b = await world.deployment(c.dev, other, cpu=1, name="B", depends_on=[a["id"]])
    d = await c.submit("C", cpu=1, depends_on=[b["id"]])
    assert (b["status"], b["status_reason"], b["queue_position"]) == (
        "pending",
        "waiting_for_dependencies",
        None,
    )
    assert d["depends_on"] == [b["id"]]
    await c.act(a, "complete")
    assert await c.statuses(b, d) == ["running", "pending"]
    await c.act(b, "complete")
    assert await c.statuses(d) == ["running"]


async def test_cancelling_a_dependency_fails_its_dependents_transitively(
    world: World, make_cluster: Any
) -> None:
    c = await make_cluster(cpu=4)
    other = await world.cluster(c.org, cpu=4)
    a = await c.submit("A", cpu=1)
    b = await world.deployment(c.dev, other, cpu=1, name="B", depends_on=[a["id"]])
    d = await c.submit("C", cpu=1, depends_on=[b["id"]])
    await c.act(a, "cancel")
    for dependent in (b, d):
        failed = await c.get(dependent)
        assert (failed["status"], failed["status_reason"]) == ("failed", "dependency_failed")
        events = await c.events(dependent)
        assert events[-1] == {
            **events[-1],
            "type": "failed",
            "detail": {"reason": "dependency_failed"},
        }
    cancelled = await c.events(a)
    assert cancelled[-1]["type"] == "cancelled"
    assert cancelled[-1]["detail"] == {"by": c.dev.id}
    assert (await c.state())["pending_count"] == 0


async def test_a_dependency_that_already_failed_gives_a_failed_deployment(
    make_cluster: Any,
) -> None:
    c = await make_cluster(cpu=4)
    a = await c.submit("A", cpu=1)
    await c.act(a, "cancel")
    b = await c.submit("B", cpu=1, depends_on=[a["id"], a["id"]])
    assert (b["status"], b["status_reason"]) == ("failed", "dependency_failed")
    assert b["depends_on"] == [a["id"]]
    assert (await c.state())["pending_count"] == 0


async def test_growing_a_cluster_starts_what_now_fits(make_cluster: Any) -> None:
    c = await make_cluster(cpu=2)
    await c.submit("a", cpu=2)
    waiting = await c.submit("b", cpu=2)
    assert waiting["status"] == "pending"
    grown = await c.org.admin.client.patch(
        f"/api/v1/clusters/{c.id}", json={"resources": {"cpu": 4, "ram_gb": 16, "gpu": 0}}
    )
    assert grown.status_code == 200
    assert grown.json()["running_count"] == 2
    assert (await c.get(waiting))["status"] == "running"


async def test_shrinking_fails_pending_that_can_never_fit(make_cluster: Any) -> None:
    c = await make_cluster(cpu=4)
    await c.submit("a", cpu=1)
    huge = await c.submit("huge", cpu=4, preemption_policy="never")
    dependent = await c.submit("dep", cpu=1, depends_on=[huge["id"]])
    patch = f"/api/v1/clusters/{c.id}"
    below = await c.org.admin.client.patch(
        patch, json={"resources": {"cpu": 0.5, "ram_gb": 16, "gpu": 0}}
    )
    assert_error(below, 409, "capacity_below_allocated")
    shrunk = await c.org.admin.client.patch(
        patch, json={"resources": {"cpu": 2, "ram_gb": 16, "gpu": 0}}
    )
    assert shrunk.status_code == 200
    failed = await c.get(huge)
    assert (failed["status"], failed["status_reason"]) == ("failed", "exceeds_cluster_capacity")
    assert (await c.get(dependent))["status_reason"] == "dependency_failed"
    assert shrunk.json()["pending_count"] == 0


async def test_transitions_outside_the_lifecycle_are_409(make_cluster: Any) -> None:
    c = await make_cluster(cpu=1)
    running = await c.submit("r", cpu=1)
    pending = await c.submit("p", cpu=1)
    assert_error(
        await c.dev.client.post(f"/api/v1/deployments/{pending['id']}/complete"),
        409,
        "invalid_transition",
    )
    await c.act(running, "complete")
    for action in ("complete", "cancel"):
        response = await c.dev.client.post(f"/api/v1/deployments/{running['id']}/{action}")
        assert_error(response, 409, "invalid_transition")


async def test_busy_clusters_and_organizations_cannot_be_deleted(make_cluster: Any) -> None:
    c = await make_cluster(cpu=1)
    d = await c.submit("r", cpu=1)
    admin = c.org.admin.client
    assert_error(await admin.delete(f"/api/v1/clusters/{c.id}"), 409, "cluster_in_use")
    assert_error(
        await admin.delete(f"/api/v1/organizations/{c.org.id}"), 409, "organization_in_use"
    )
    await c.act(d, "complete")
    assert (await admin.delete(f"/api/v1/clusters/{c.id}")).status_code == 204
    assert_error(await admin.get(f"/api/v1/deployments/{d['id']}"), 404, "deployment_not_found")


async def test_allocated_always_equals_the_running_sum(make_cluster: Any) -> None:
    c = await make_cluster(cpu=3, ram_gb=3, gpu=1)
    made = [
        await c.submit(f"d{i}", cpu=1, ram_gb=0.5 * (i % 3), gpu=i % 2, priority=i % 4)
        for i in range(8)
    ]
    await c.act(made[-1], "cancel")
    listed = (await c.dev.client.get(f"/api/v1/clusters/{c.id}/deployments?status=running")).json()
    state = await c.state()
    for key in ("cpu", "ram_gb", "gpu"):
        assert state["allocated"][key] == pytest.approx(sum(d["resources"][key] for d in listed))
        assert state["allocated"][key] <= state["capacity"][key]
    assert state["running_count"] == len(listed)
