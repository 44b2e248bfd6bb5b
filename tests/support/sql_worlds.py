"""Random scheduling worlds written to PostgreSQL as rows, for the tests that check the SQL mirrors
of the pure scheduler (`tests/services/test_sql_mirrors.py`).

Hypothesis draws the shape of a world (`WorldSpec`: sizes, priority levels, how many distinct
timestamps, which resource shapes); a `random.Random` seeded from the spec fills in the thousands
of rows. Drawing the rows one by one through Hypothesis would be slow and shrink poorly; this way
an example stays small, and a failing one is reproduced from the spec that Hypothesis prints.

Beside the cluster under test every world holds rows that the statements must ignore: deployments
waiting for dependencies, ended ones, and a second cluster of the same organization whose rows
would sort first (lowest running priority and earliest start; highest pending priority and
earliest arrival) if a statement forgot its `cluster_id`.
"""

from __future__ import annotations

import enum
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import Cluster, Deployment, DeploymentStatus, Organization, PreemptionPolicy, User
from app.scheduling import PendingDeployment, Resources, RunningDeployment, total
from app.scheduling.ordering import QUEUE, REPRIEVE
from tests.scheduling.oracle import T0, World
from tests.support.books import CLUSTER_BOOKS, assert_balanced

QUEUE_KEY = QUEUE.sort_key()
LOWEST_FIRST_KEY = REPRIEVE.reversed().sort_key()

PENDING, RUNNING = DeploymentStatus.pending, DeploymentStatus.running
ENDED = (DeploymentStatus.completed, DeploymentStatus.failed, DeploymentStatus.cancelled)

# "mixed": every dimension varies; "cpu": one dominant dimension; "uniform": all alike, so that
# sums of candidates equal a deficit exactly (the boundaries of the tail's window sums).
SHAPES = ("mixed", "cpu", "uniform")


@dataclass(frozen=True)
class WorldSpec:
    seed: int
    levels: tuple[int, ...]  # the priorities running deployments hold, ascending
    running: int
    queued: int  # pending with every dependency met
    waiting: int  # pending with unmet dependencies
    time_slots: int  # distinct timestamps: few means many ties, broken by id
    shape: str
    strategy: str = "priority"


def world_specs(
    *,
    running: tuple[int, int] = (150, 400),
    queued: st.SearchStrategy[int] | None = None,
    strategies: tuple[str, ...] = ("priority",),
) -> st.SearchStrategy[WorldSpec]:
    return st.builds(
        WorldSpec,
        seed=st.integers(0, 2**32 - 1),
        levels=st.lists(st.integers(0, 1000), min_size=2, max_size=8, unique=True).map(
            lambda levels: tuple(sorted(levels))
        ),
        running=st.integers(*running),
        queued=queued if queued is not None else st.integers(1000, 3000),
        waiting=st.integers(0, 120),
        time_slots=st.sampled_from([1, 4, 40, 1_000_000]),
        shape=st.sampled_from(SHAPES),
        strategy=st.sampled_from(strategies),
    )


@dataclass
class SqlWorld:
    """The Python side of a world; `insert` writes it. `world` holds the cluster under test:
    capacity, running deployments and the queue (pending, dependencies met)."""

    spec: WorldSpec
    rng: random.Random
    world: World
    waiting: dict[uuid.UUID, tuple[PendingDeployment, int]] = field(default_factory=dict)
    ended: list[dict[str, Any]] = field(default_factory=list)
    preemptions: dict[uuid.UUID, int] = field(default_factory=dict)
    organization_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    cluster_id: uuid.UUID = field(default_factory=uuid.uuid4)
    other_cluster_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    def at(self) -> datetime:
        return T0 + timedelta(seconds=self.rng.randrange(self.spec.time_slots))

    def resources(self) -> Resources:
        rng, shape = self.rng, self.spec.shape
        if shape == "uniform":
            return Resources(1000, 1000, 0)
        if shape == "cpu":
            return Resources(rng.choice([250, 500, 1000, 1500, 2000]), 100, 0)
        while True:
            res = Resources(
                rng.choice([0, 250, 500, 1000, 1500, 2000, 3000]),
                rng.choice([0, 512, 1000, 2000, 4000]),
                rng.choice([0, 0, 0, 1, 2]),
            )
            if not res.is_zero():
                return res

    def share_of_capacity(self, low: float, high: float) -> Resources:
        """Up to a share of the capacity in each dimension (a large request)."""
        cap, rng = self.world.capacity, self.rng
        return Resources(
            int(cap.cpu_millis * rng.uniform(low, high)),
            int(cap.ram_millis * rng.uniform(low, high)),
            int(cap.gpu * rng.uniform(low, high)),
        )

    def priority(self) -> int:
        """A pending priority: mostly a running level, else next to one, else anything."""
        rng, levels = self.rng, self.spec.levels
        roll = rng.random()
        if roll < 0.6:
            return rng.choice(levels)
        if roll < 0.85:
            return min(1000, max(0, rng.choice(levels) + rng.choice([-1, 1])))
        return rng.randint(0, 1000)

    def pending(self, *, created_at: datetime | None = None) -> PendingDeployment:
        roll = self.rng.random()
        if roll < 0.04:
            res = self.share_of_capacity(0.05, 0.5)
        elif roll < 0.05:  # larger than the cluster: only a capacity shrink leaves such rows
            res = self.resources() + Resources(self.world.capacity.cpu_millis + 1, 0, 0)
        else:
            res = self.resources()
        return PendingDeployment(
            self.new_id(),
            self.priority(),
            res,
            created_at or self.at(),
            self.rng.random() < 0.8,
        )


def build_world(spec: WorldSpec) -> SqlWorld:
    rng = random.Random(spec.seed)
    sql_world = SqlWorld(spec, rng, World(Resources.zero()))
    world = sql_world.world
    for _ in range(spec.running):
        res = sql_world.resources()
        run = RunningDeployment(
            sql_world.new_id(),
            rng.choice(spec.levels),
            res,
            sql_world.at(),
            sql_world.at(),
            rng.random() < 0.8,
        )
        world.running[run.id] = run
    allocated = world.allocated()

    def slack(typical: int) -> int:
        return rng.choice([0, 0, typical // 2, typical, 5 * typical])

    world.capacity = allocated + Resources(slack(1000), slack(2000), slack(2))
    for _ in range(spec.queued):
        item = sql_world.pending()
        world.pending[item.id] = item
    for _ in range(spec.waiting):
        item = sql_world.pending()
        sql_world.waiting[item.id] = (item, rng.randint(1, 3))
    for _ in range(max(5, spec.queued // 20)):
        status = rng.choice(ENDED)
        res = sql_world.resources()
        started = sql_world.at() if rng.random() < 0.5 else None
        sql_world.ended.append(
            row(
                sql_world,
                sql_world.cluster_id,
                sql_world.new_id(),
                rng.randint(0, 1000),
                res,
                sql_world.at(),
                True,
                status,
                started_at=started,
            )
        )
    for item in world.pending.values():
        sql_world.preemptions[item.id] = rng.choice([0, 0, 0, 1, 2])
    return sql_world


def row(
    sql_world: SqlWorld,
    cluster_id: uuid.UUID,
    deployment_id: uuid.UUID,
    priority: int,
    res: Resources,
    created_at: datetime,
    may_preempt: bool,
    status: DeploymentStatus,
    *,
    started_at: datetime | None = None,
    unmet: int = 0,
    preemption_count: int = 0,
) -> dict[str, Any]:
    return {
        "id": deployment_id,
        "organization_id": sql_world.organization_id,
        "cluster_id": cluster_id,
        "name": f"d-{deployment_id.hex[:8]}",
        "model": "mock",
        "cpu_millis": res.cpu_millis,
        "ram_millis": res.ram_millis,
        "gpu": res.gpu,
        "priority": priority,
        "preemption_policy": (
            PreemptionPolicy.preempt_lower_priority if may_preempt else PreemptionPolicy.never
        ),
        "status": status,
        "status_reason": "preempted" if preemption_count and status == PENDING else None,
        "unmet_dependencies": unmet,
        "preemption_count": preemption_count,
        "created_by": sql_world.user_id,
        "created_at": created_at,
        "started_at": started_at,
        "finished_at": created_at if status in ENDED else None,
    }


def _other_cluster_rows(sql_world: SqlWorld) -> tuple[list[dict[str, Any]], Resources, int, int]:
    """Rows of the second cluster, built to sort first everywhere if a statement leaked."""
    early = T0 - timedelta(days=1)
    rows: list[dict[str, Any]] = []
    running_total = Resources.zero()
    for _ in range(40):
        res = sql_world.resources()
        running_total = running_total + res
        rows.append(
            row(
                sql_world,
                sql_world.other_cluster_id,
                sql_world.new_id(),
                0,
                res,
                early,
                True,
                RUNNING,
                started_at=early,
            )
        )
    for _ in range(100):
        rows.append(
            row(
                sql_world,
                sql_world.other_cluster_id,
                sql_world.new_id(),
                1000,
                Resources(1),
                early,
                True,
                PENDING,
            )
        )
    return rows, running_total, 40, 100


@dataclass(frozen=True)
class WorldRows:
    """Everything a world writes: the heads (user, organization, clusters, inserted with Core)
    and the deployments (thousands, copied)."""

    heads: list[tuple[Any, list[dict[str, Any]]]]
    columns: list[str]
    deployments: list[list[Any]]

    @property
    def copy_statement(self) -> sql.Composed:
        return sql.SQL("COPY deployments ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, self.columns))
        )


def world_rows(sql_world: SqlWorld) -> WorldRows:
    """The rows of the world; the clusters' books match their deployments."""
    user = {
        "id": sql_world.user_id,
        "username": f"u{sql_world.user_id.hex[:12]}",
        "email": f"{sql_world.user_id.hex}@example.com",
        "password_hash": "x",
        "created_at": T0,
    }
    organization = {
        "id": sql_world.organization_id,
        "name": "mirrors",
        "invite_code": sql_world.organization_id.hex,
        "webhook_secret": "whsec_" + sql_world.organization_id.hex,
        "created_at": T0,
    }
    world = sql_world.world
    other_rows, other_total, other_running, other_pending = _other_cluster_rows(sql_world)
    clusters = [
        _cluster_row(
            sql_world,
            sql_world.cluster_id,
            "under-test",
            world.capacity,
            world.allocated(),
            len(world.running),
            len(world.pending) + len(sql_world.waiting),
        ),
        _cluster_row(
            sql_world,
            sql_world.other_cluster_id,
            "other",
            other_total,
            other_total,
            other_running,
            other_pending,
        ),
    ]
    cid, preemptions = sql_world.cluster_id, sql_world.preemptions
    rows = [*other_rows, *sql_world.ended]
    for run in world.running.values():
        count = preemptions.get(run.id, 0)
        rows.append(
            row(
                sql_world,
                cid,
                run.id,
                run.priority,
                run.resources,
                run.created_at,
                run.may_preempt,
                RUNNING,
                started_at=run.started_at,
                preemption_count=count,
            )
        )
    for item in world.pending.values():
        count = preemptions.get(item.id, 0)
        rows.append(
            row(
                sql_world,
                cid,
                item.id,
                item.priority,
                item.resources,
                item.created_at,
                item.may_preempt,
                PENDING,
                preemption_count=count,
            )
        )
    for item, unmet in sql_world.waiting.values():
        rows.append(
            row(
                sql_world,
                cid,
                item.id,
                item.priority,
                item.resources,
                item.created_at,
                item.may_preempt,
                PENDING,
                unmet=unmet,
            )
        )
    sql_world.rng.shuffle(rows)  # physical order must not matter
    columns = list(rows[0])
    return WorldRows(
        [(User, [user]), (Organization, [organization]), (Cluster, clusters)],
        columns,
        [[_stored(values[column]) for column in columns] for values in rows],
    )


def _stored(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


# Deployments go in with COPY on the session's own connection, inside its transaction: thousands
# of rows in tens of milliseconds, where an executemany of INSERTs takes a round of psycopg's
# pipeline per row. The values are already what the columns store (UTC datetimes, the enums'
# values), and the table's CHECK constraints and foreign keys still vet them.


def insert_world(session: Session, sql_world: SqlWorld) -> None:
    """Write the world in the session's transaction (a synchronous session)."""
    rows = world_rows(sql_world)
    conn = session.connection()
    for model, values in rows.heads:
        conn.execute(insert(model), values)
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with raw.cursor() as cursor, cursor.copy(rows.copy_statement) as copy:
        for values in rows.deployments:
            copy.write_row(values)


async def insert_world_async(db: AsyncSession, sql_world: SqlWorld) -> None:
    """Write the world in the session's transaction (an asynchronous session)."""
    rows = world_rows(sql_world)
    conn = await db.connection()
    for model, values in rows.heads:
        await conn.execute(insert(model), values)
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, psycopg.AsyncConnection)
    async with raw.cursor() as cursor, cursor.copy(rows.copy_statement) as copy:
        for values in rows.deployments:
            await copy.write_row(values)


def _cluster_row(
    sql_world: SqlWorld,
    cluster_id: uuid.UUID,
    name: str,
    capacity: Resources,
    allocated: Resources,
    running: int,
    pending: int,
) -> dict[str, Any]:
    return {
        "id": cluster_id,
        "organization_id": sql_world.organization_id,
        "name": name,
        "preemption_strategy": sql_world.spec.strategy,
        "capacity_cpu_millis": capacity.cpu_millis,
        "capacity_ram_millis": capacity.ram_millis,
        "capacity_gpu": capacity.gpu,
        "allocated_cpu_millis": allocated.cpu_millis,
        "allocated_ram_millis": allocated.ram_millis,
        "allocated_gpu": allocated.gpu,
        "pending_count": pending,
        "running_count": running,
        "created_at": T0,
    }


@dataclass(frozen=True)
class RowState:
    status: DeploymentStatus
    unmet: int
    preemption_count: int
    status_reason: str | None
    started_at: datetime | None


def read_rows(session: Session, cluster_id: uuid.UUID) -> dict[uuid.UUID, RowState]:
    rows = session.execute(
        select(
            Deployment.id,
            Deployment.status,
            Deployment.unmet_dependencies,
            Deployment.preemption_count,
            Deployment.status_reason,
            Deployment.started_at,
        ).where(Deployment.cluster_id == cluster_id)
    )
    return {r[0]: RowState(r[1], r[2], r[3], r[4], r[5]) for r in rows}


def assert_books(session: Session, cluster_ids: list[uuid.UUID]) -> None:
    """`books.assert_balanced` for these clusters, read in the test's own transaction."""
    where = text(CLUSTER_BOOKS.format(where="WHERE c.id = ANY(:ids)"))
    rows = session.execute(where, {"ids": cluster_ids}).all()
    assert len(rows) == len(cluster_ids)
    assert_balanced(rows)


def short(items: Any) -> str:
    """Ids (first 8 hex digits) of deployments, decisions' ids or id lists, for messages."""
    out = []
    for item in items:
        value = getattr(item, "id", item)
        out.append(value.hex[:8] if isinstance(value, uuid.UUID) else repr(value))
    return "[" + ", ".join(out[:12]) + (", ..." if len(out) > 12 else "") + "]"


def lower_candidates(running: Any, priority: int) -> list[RunningDeployment]:
    """Preemption candidates of a newcomer of `priority`, lowest first (reverse reprieve order)."""
    return sorted((r for r in running if r.priority < priority), key=LOWEST_FIRST_KEY)


def resources_of(items: Any) -> Resources:
    return total(item.resources for item in items)
