"""FIFO by arrival: a deployment's `created_at` is stamped when its request reaches the service,
before it waits for any lock, with or without dependencies (the README's promise)."""

import asyncio
from datetime import datetime, timedelta

import psycopg
import pytest

from app.db.base import utcnow
from tests.support.api import World

WAIT = timedelta(milliseconds=500)


@pytest.mark.parametrize("with_dependency", [False, True])
async def test_created_at_is_the_arrival_not_the_moment_the_locks_were_granted(
    world: World, postgres_url: str, with_dependency: bool
) -> None:
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    dependency = await world.deployment(admin, cluster, cpu=1)
    body = {"name": "late", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}}
    if with_dependency:
        body["depends_on"] = [dependency["id"]]
    # Hold the first lock the creation needs, as a concurrent request would: the organization
    # row when it has dependencies, else the cluster row.
    table, row_id = ("organizations", org.id) if with_dependency else ("clusters", cluster)
    with psycopg.connect(postgres_url) as holder:
        holder.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", (row_id,))
        sent = utcnow()
        creating = asyncio.create_task(
            admin.client.post(f"/api/v1/clusters/{cluster}/deployments", json=body)
        )
        await asyncio.sleep(WAIT.total_seconds())
        assert not creating.done(), "the creation did not wait for the lock"
        released = utcnow()
        holder.rollback()
    response = await creating
    assert response.status_code == 201, response.text
    created_at = datetime.fromisoformat(response.json()["created_at"])
    assert sent <= created_at < released - WAIT / 2
    events = (await admin.client.get(f"/api/v1/deployments/{response.json()['id']}/events")).json()
    assert datetime.fromisoformat(events[0]["at"]) == created_at


async def test_a_newcomer_that_fitted_when_it_arrived_but_not_once_it_has_the_lock_waits(
    world: World, postgres_url: str
) -> None:
    """The common path starts a newcomer in the statement that takes the cluster's lock, guarded
    by the fit, which must be judged on the row as it is once the lock is granted, not as it was
    loaded: here the room it saw is taken while it waits, so it is queued, the books exact; and
    a newcomer that does start starts when the lock is granted, not when it arrived."""
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4, ram_gb=4, gpu=1)
    body = {"name": "late", "resources": {"cpu": 1, "ram_gb": 0, "gpu": 1}}
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT id FROM clusters WHERE id = %s FOR UPDATE", (cluster,))
        creating = asyncio.create_task(
            admin.client.post(f"/api/v1/clusters/{cluster}/deployments", json=body)
        )
        await asyncio.sleep(WAIT.total_seconds())
        assert not creating.done(), "the creation did not wait for the lock"
        # What a concurrent creation would have committed: the only GPU allocated.
        holder.execute(
            "UPDATE clusters SET allocated_gpu = 1, running_count = running_count + 1 "
            "WHERE id = %s",
            (cluster,),
        )
        holder.commit()
    response = await creating
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    with psycopg.connect(postgres_url) as reader:
        books = reader.execute(
            "SELECT allocated_gpu, running_count, pending_count FROM clusters WHERE id = %s",
            (cluster,),
        ).fetchone()
    assert books == (1, 1, 1)

    second = await world.cluster(org, cpu=4, ram_gb=4, gpu=1)
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT id FROM clusters WHERE id = %s FOR UPDATE", (second,))
        creating = asyncio.create_task(
            admin.client.post(f"/api/v1/clusters/{second}/deployments", json=body)
        )
        await asyncio.sleep(WAIT.total_seconds())
        released = utcnow()
        holder.rollback()
    started = (await creating).json()
    assert started["status"] == "running"
    # Not the moment it arrived, half a second earlier: when the lock was granted (give or take
    # the time the statement took to reach the database).
    assert datetime.fromisoformat(started["started_at"]) >= released - WAIT / 2
