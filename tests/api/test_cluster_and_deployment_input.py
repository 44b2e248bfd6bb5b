"""Input rules for clusters and deployments: the Limits table rows of these routes, unknown names,
foreign dependencies and oversize requests, all 422 with `fields`; and the read-only endpoints."""

from typing import Any

import httpx
import pytest

from tests.support.api import Org, User, World, assert_error


def fields_of(response: httpx.Response, code: str = "validation_error") -> set[str]:
    body = assert_error(response, 422, code)
    assert body["fields"], body
    return {item["field"] for item in body["fields"]}


@pytest.fixture
async def scene(world: World) -> tuple[Org, User, str]:
    admin, dev = await world.user(), await world.user()
    org = await world.org(admin, developer=dev)
    cluster_id = await world.cluster(org, cpu=8, ram_gb=32, gpu=2)
    return org, dev, cluster_id


GOOD_RESOURCES = {"cpu": 1, "ram_gb": 1, "gpu": 0}


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"cpu": -1, "ram_gb": 1, "gpu": 0}, "resources.cpu"),
        ({"cpu": 100_000.001, "ram_gb": 1, "gpu": 0}, "resources.cpu"),
        ({"cpu": 0.0001, "ram_gb": 1, "gpu": 0}, "resources.cpu"),
        ({"cpu": "1", "ram_gb": 1, "gpu": 0}, "resources.cpu"),
        ({"cpu": 1, "ram_gb": 1_000_000.5, "gpu": 0}, "resources.ram_gb"),
        ({"cpu": 1, "ram_gb": 0.12345, "gpu": 0}, "resources.ram_gb"),
        ({"cpu": 1, "ram_gb": 1, "gpu": 1.5}, "resources.gpu"),
        ({"cpu": 1, "ram_gb": 1, "gpu": 1025}, "resources.gpu"),
        ({"cpu": 1, "ram_gb": 1, "gpu": -1}, "resources.gpu"),
        ({"cpu": 1, "ram_gb": 1}, "resources.gpu"),
        ({"cpu": 1, "ram_gb": 1, "gpu": 0, "tpu": 1}, "resources.tpu"),
    ],
)
async def test_resource_limits(
    scene: tuple[Org, User, str], resources: dict[str, Any], field: str
) -> None:
    org, dev, cluster_id = scene
    cluster = await org.admin.client.post(
        f"/api/v1/organizations/{org.id}/clusters", json={"name": "x", "resources": resources}
    )
    assert field in fields_of(cluster)
    deployment = await dev.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments", json={"name": "d", "resources": resources}
    )
    assert field in fields_of(deployment)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"priority": -1}, "priority"),
        ({"priority": 1001}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"preemption_policy": "always"}, "preemption_policy"),
        ({"depends_on": [f"{i:032x}" for i in range(33)]}, "depends_on"),
        ({"depends_on": "not-a-list"}, "depends_on"),
    ],
)
async def test_deployment_limits(
    scene: tuple[Org, User, str], body: dict[str, Any], field: str
) -> None:
    _, dev, cluster_id = scene
    response = await dev.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments",
        json={"name": "d", "resources": GOOD_RESOURCES, **body},
    )
    assert field in fields_of(response)


async def test_all_zero_request_is_422(scene: tuple[Org, User, str]) -> None:
    _, dev, cluster_id = scene
    response = await dev.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments",
        json={"name": "d", "resources": {"cpu": 0, "ram_gb": 0, "gpu": 0}},
    )
    assert fields_of(response) == {"resources"}


async def test_unknown_model_and_strategy(scene: tuple[Org, User, str]) -> None:
    org, dev, cluster_id = scene
    model = await dev.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments",
        json={"name": "d", "model": "gpt-17", "resources": GOOD_RESOURCES},
    )
    assert fields_of(model, "unknown_model") == {"model"}
    strategy = await org.admin.client.post(
        f"/api/v1/organizations/{org.id}/clusters",
        json={"name": "s", "resources": GOOD_RESOURCES, "preemption_strategy": "random"},
    )
    assert fields_of(strategy, "unknown_strategy") == {"preemption_strategy"}
    patched = await org.admin.client.patch(
        f"/api/v1/clusters/{cluster_id}", json={"preemption_strategy": "random"}
    )
    assert fields_of(patched, "unknown_strategy") == {"preemption_strategy"}


@pytest.mark.parametrize("model", ["mock", "distilbert-sst2", "gemma3:1b"])
async def test_every_catalog_model_can_be_deployed(
    scene: tuple[Org, User, str], model: str
) -> None:
    _, dev, cluster_id = scene
    response = await dev.client.post(
        f"/api/v1/clusters/{cluster_id}/deployments",
        json={"name": "d", "model": model, "resources": GOOD_RESOURCES},
    )
    assert response.status_code == 201
    assert response.json()["model"] == model


async def test_dependencies_must_belong_to_the_organization(
    world: World, scene: tuple[Org, User, str]
) -> None:
    _, dev, cluster_id = scene
    stranger = await world.user()
    foreign_org = await world.org(stranger)
    foreign_cluster = await world.cluster(foreign_org)
    foreign = await world.deployment(stranger, foreign_cluster)
    for ids in ([foreign["id"]], ["not-a-uuid"], ["00000000-0000-0000-0000-000000000000"]):
        response = await dev.client.post(
            f"/api/v1/clusters/{cluster_id}/deployments",
            json={"name": "d", "resources": GOOD_RESOURCES, "depends_on": ids},
        )
        assert fields_of(response, "unknown_dependency") == {"depends_on"}
    listed = await dev.client.get(f"/api/v1/clusters/{cluster_id}/deployments")
    assert listed.json() == []


async def test_larger_than_the_cluster_in_any_dimension_is_422(
    scene: tuple[Org, User, str],
) -> None:
    _, dev, cluster_id = scene
    for resources in (
        {"cpu": 8.001, "ram_gb": 1, "gpu": 0},
        {"cpu": 1, "ram_gb": 33, "gpu": 0},
        {"cpu": 1, "ram_gb": 1, "gpu": 3},
    ):
        response = await dev.client.post(
            f"/api/v1/clusters/{cluster_id}/deployments", json={"name": "d", "resources": resources}
        )
        assert_error(response, 422, "exceeds_cluster_capacity")


async def test_cluster_names_are_unique_per_organization(
    world: World, scene: tuple[Org, User, str]
) -> None:
    org, _, cluster_id = scene
    name = (await org.admin.client.get(f"/api/v1/clusters/{cluster_id}")).json()["name"]
    again = await org.admin.client.post(
        f"/api/v1/organizations/{org.id}/clusters", json={"name": name, "resources": GOOD_RESOURCES}
    )
    assert_error(again, 409, "cluster_name_taken")
    other = await world.cluster(org, name="second")
    renamed = await org.admin.client.patch(f"/api/v1/clusters/{other}", json={"name": name})
    assert_error(renamed, 409, "cluster_name_taken")
    elsewhere = await world.org(await world.user())
    assert await world.cluster(elsewhere, name=name)


async def test_cluster_body_and_defaults(scene: tuple[Org, User, str]) -> None:
    org, _, cluster_id = scene
    body = (await org.admin.client.get(f"/api/v1/clusters/{cluster_id}")).json()
    assert set(body) == {
        "id", "organization_id", "name", "capacity", "allocated", "available",
        "preemption_strategy", "pending_count", "running_count", "preempting_count",
        "preemption_grace_seconds", "created_at",
    }  # fmt: skip
    assert body["preemption_strategy"] == "priority"
    assert (body["preempting_count"], body["preemption_grace_seconds"]) == (0, 0)
    assert body["capacity"] == {"cpu": 8, "ram_gb": 32, "gpu": 2}
    listed = await org.admin.client.get(f"/api/v1/organizations/{org.id}/clusters")
    assert [c["id"] for c in listed.json()] == [cluster_id]
    assert listed.headers["X-Total-Count"] == "1"


async def test_strategies_are_listed(scene: tuple[Org, User, str]) -> None:
    _, dev, _ = scene
    response = await dev.client.get("/api/v1/scheduling/strategies")
    names = {s["name"]: s["description"] for s in response.json()}
    assert {"priority", "none"} <= set(names)
    assert all(names.values())


async def test_org_listing_filters_by_status_and_cluster(
    world: World, scene: tuple[Org, User, str]
) -> None:
    org, dev, cluster_id = scene
    other = await world.cluster(org, cpu=1)
    a = await world.deployment(dev, cluster_id, cpu=1)
    b = await world.deployment(dev, other, cpu=1)
    c = await world.deployment(dev, other, cpu=1)
    base = f"/api/v1/organizations/{org.id}/deployments"
    everything = await dev.client.get(base)
    assert [d["id"] for d in everything.json()] == [a["id"], b["id"], c["id"]]
    pending = await dev.client.get(f"{base}?status=pending")
    assert [d["id"] for d in pending.json()] == [c["id"]]
    in_other = await dev.client.get(f"{base}?cluster_id={other}&limit=1&offset=1")
    assert [d["id"] for d in in_other.json()] == [c["id"]]
    assert in_other.headers["X-Total-Count"] == "2"
    assert fields_of(await dev.client.get(f"{base}?status=sleeping")) == {"status"}


async def test_scheduling_metrics_move(scene: tuple[Org, User, str], world: World) -> None:
    _, dev, cluster_id = scene

    def value(text: str, prefix: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
        )

    before = (await dev.client.get("/metrics")).text
    await world.deployment(dev, cluster_id, cpu=8, priority=0)
    await world.deployment(dev, cluster_id, cpu=8, priority=5)
    after = (await dev.client.get("/metrics")).text
    started = 'mlops_scheduling_decisions_total{decision="started"}'
    assert value(after, started) == value(before, started) + 2
    assert value(after, "mlops_preemptions_total ") == value(before, "mlops_preemptions_total ") + 1
    assert value(after, 'mlops_deployments{status="running"}') >= 1
    assert value(after, 'mlops_deployments{status="pending"}') >= 1


async def test_clusters_take_capacity_in_and_out_and_still_accept_resources(
    scene: tuple[Org, User, str], world: World
) -> None:
    org, _, _ = scene
    url = f"/api/v1/organizations/{org.id}/clusters"
    admin = org.admin.client
    created = await admin.post(
        url, json={"name": "new", "capacity": {"cpu": 2, "ram_gb": 4, "gpu": 0}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["capacity"] == {"cpu": 2, "ram_gb": 4, "gpu": 0}
    old_name = await admin.post(
        url, json={"name": "old", "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}}
    )
    assert old_name.status_code == 201, old_name.text
    cluster = f"/api/v1/clusters/{created.json()['id']}"
    grown = await admin.patch(cluster, json={"capacity": {"cpu": 3, "ram_gb": 4, "gpu": 1}})
    assert grown.json()["capacity"] == {"cpu": 3, "ram_gb": 4, "gpu": 1}
    both = {
        "name": "x",
        "capacity": {"cpu": 1, "ram_gb": 1, "gpu": 0},
        "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0},
    }
    assert_error(await admin.post(url, json=both), 422, "validation_error")
    assert_error(
        await admin.patch(
            cluster,
            json={
                "capacity": {"cpu": 1, "ram_gb": 1, "gpu": 0},
                "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0},
            },
        ),
        422,
        "validation_error",
    )
    assert_error(await admin.post(url, json={"name": "none"}), 422, "validation_error")
