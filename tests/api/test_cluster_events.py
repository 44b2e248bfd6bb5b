"""`GET /api/v1/clusters/{cluster_id}/events`: the events of a cluster's deployments in one feed,
newest first, each with its deployment; `since`, paging, and who may read it."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.api import Org, User, World, assert_error

pytestmark = pytest.mark.both_backends

Event = dict[str, Any]


@dataclass
class Scene:
    org: Org
    dev: User
    viewer: User
    cluster: str
    other_cluster: str  # of the same organization
    low: dict[str, Any]  # preempted by `high`
    high: dict[str, Any]
    elsewhere: dict[str, Any]  # on `other_cluster`


async def build_scene(world: World) -> Scene:
    admin, dev, viewer = await world.user(), await world.user(), await world.user()
    org = await world.org(admin, developer=dev, viewer=viewer)
    cluster = await world.cluster(org, cpu=4)
    other_cluster = await world.cluster(org, cpu=4)
    low = await world.deployment(dev, cluster, cpu=3, priority=1, name="low")
    elsewhere = await world.deployment(dev, other_cluster, cpu=1, name="elsewhere")
    high = await world.deployment(dev, cluster, cpu=2, priority=5, name="high")
    assert high["status"] == "running"
    return Scene(org, dev, viewer, cluster, other_cluster, low, high, elsewhere)


async def feed(client: httpx.AsyncClient, cluster: str, **params: Any) -> tuple[list[Event], int]:
    response = await client.get(f"/api/v1/clusters/{cluster}/events", params=params)
    assert response.status_code == 200, response.text
    events: list[Event] = response.json()
    return events, int(response.headers["X-Total-Count"])


async def own_events(client: httpx.AsyncClient, deployment: dict[str, Any]) -> list[Event]:
    """A deployment's events as its own route lists them: oldest first."""
    response = await client.get(f"/api/v1/deployments/{deployment['id']}/events")
    assert response.status_code == 200, response.text
    events: list[Event] = response.json()
    return events


def at(event: Event) -> datetime:
    return datetime.fromisoformat(event["at"])


def of(events: list[Event], deployment: dict[str, Any]) -> list[Event]:
    """The events of one deployment in a feed, without the two keys the feed adds."""
    return [
        {key: e[key] for key in ("at", "type", "detail")}
        for e in events
        if e["deployment_id"] == deployment["id"]
    ]


async def test_a_preemption_newest_first_with_victim_and_preemptor(world: World) -> None:
    s = await build_scene(world)
    events, total = await feed(s.dev.client, s.cluster)
    assert total == len(events) == 6
    assert {tuple(sorted(e)) for e in events} == {
        ("at", "deployment_id", "deployment_name", "detail", "type")
    }
    # Newest first, and each deployment's events exactly those of its own route, reversed (ties
    # on `at`, such as `preempted` and `requeued`, the later recorded first).
    assert [at(e) for e in events] == sorted((at(e) for e in events), reverse=True)
    for deployment in (s.low, s.high):
        assert of(events, deployment) == list(reversed(await own_events(s.dev.client, deployment)))
    assert [e["type"] for e in of(events, s.low)] == [
        "requeued",
        "preempted",
        "scheduled",
        "created",
    ]
    assert [e["type"] for e in of(events, s.high)] == ["scheduled", "created"]
    # The preemption, as a timeline draws it: the victim's `preempted`, naming the preemptor.
    [preempted] = [e for e in events if e["type"] == "preempted"]
    assert preempted["deployment_id"] == s.low["id"]
    assert preempted["deployment_name"] == "low"
    assert preempted["detail"] == {"preempted_by": s.high["id"]}
    assert {e["deployment_name"] for e in events if e["deployment_id"] == s.high["id"]} == {"high"}
    # The latest are on the first page: the preemption happened after `low` was created.
    assert events[-1]["deployment_id"] == s.low["id"] and events[-1]["type"] == "created"


async def test_another_clusters_events_are_not_included(world: World) -> None:
    s = await build_scene(world)
    events, _ = await feed(s.dev.client, s.cluster)
    assert {e["deployment_id"] for e in events} == {s.low["id"], s.high["id"]}
    others, total = await feed(s.dev.client, s.other_cluster)
    assert total == 2
    assert [(e["deployment_id"], e["type"]) for e in others] == [
        (s.elsewhere["id"], "scheduled"),
        (s.elsewhere["id"], "created"),
    ]


async def test_since_keeps_the_events_at_or_after_it(world: World) -> None:
    s = await build_scene(world)
    events, _ = await feed(s.dev.client, s.cluster)
    [preempted] = [e for e in events if e["type"] == "preempted"]
    since = preempted["at"]
    recent, total = await feed(s.dev.client, s.cluster, since=since)
    assert recent == [e for e in events if at(e) >= at(preempted)]
    assert total == len(recent)
    assert preempted in recent  # inclusive
    assert {"preempted", "requeued"} <= {e["type"] for e in recent}
    assert "created" not in {e["type"] for e in recent if e["deployment_id"] == s.low["id"]}
    # The same time in another zone is the same moment.
    assert (await feed(s.dev.client, s.cluster, since=since.replace("Z", "+00:00")))[0] == recent
    # After the newest event: nothing.
    assert await feed(s.dev.client, s.cluster, since="2999-01-01T00:00:00Z") == ([], 0)
    # Everything since long ago is everything.
    assert (await feed(s.dev.client, s.cluster, since="2000-01-01T00:00:00+02:00"))[0] == events


@pytest.mark.parametrize("since", ["2026-12-03T14:51:47", "yesterday", "0.5"])
async def test_since_needs_an_iso_8601_time_with_a_zone(world: World, since: str) -> None:
    s = await build_scene(world)
    response = await s.dev.client.get(
        f"/api/v1/clusters/{s.cluster}/events", params={"since": since}
    )
    assert_error(response, 422, "validation_error")


async def test_pages_and_the_total(world: World) -> None:
    s = await build_scene(world)
    events, total = await feed(s.dev.client, s.cluster)
    pages = [await feed(s.dev.client, s.cluster, limit=4, offset=offset) for offset in (0, 4, 8)]
    assert [len(page) for page, _ in pages] == [4, 2, 0]
    assert [page_total for _, page_total in pages] == [total] * 3
    assert [e for page, _ in pages for e in page] == events
    for query in ({"limit": 0}, {"limit": 201}, {"offset": -1}):
        response = await s.dev.client.get(f"/api/v1/clusters/{s.cluster}/events", params=query)
        assert_error(response, 422, "validation_error")


async def test_a_viewer_may_read_an_outsider_may_not_know_it_exists(world: World) -> None:
    s = await build_scene(world)
    as_dev, _ = await feed(s.dev.client, s.cluster)
    as_viewer, _ = await feed(s.viewer.client, s.cluster)
    assert as_viewer == as_dev
    key = await world.api_key(s.org, "viewer")
    assert (await feed(key.client, s.cluster))[0] == as_dev
    outsider = await world.user()
    for cluster in (s.cluster, "00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = await outsider.client.get(f"/api/v1/clusters/{cluster}/events")
        assert_error(response, 404, "cluster_not_found")
    elsewhere = await world.api_key(await world.org(), "developer")
    response = await elsewhere.client.get(f"/api/v1/clusters/{s.cluster}/events")
    assert_error(response, 404, "cluster_not_found")
