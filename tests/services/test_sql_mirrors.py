"""The SQL that re-expresses the pure scheduler, run on PostgreSQL against the pure code.

Every example writes a random world to a fresh transaction (hundreds running, up to thousands
queued, several priority levels, many timestamp ties broken by id, plus rows the statements must
ignore: see `tests/support/sql_worlds.py`), runs the real statements on it, compares them with the
pure scheduler and the oracle, and rolls back. Checked:

* the tail of the preemption candidates (`statements.tail_candidates`: a first page of 16, else
  the window-sum query) is exactly what `reprieve.tail_length` defines on the candidates sorted in
  Python, and its victims are `PriorityPreemption.select_victims`' over the whole running set and
  the oracle's (`kube_victims`); `load_running` and `lower_priority_total` match the rows;
* `statements.fetch_relevant` returns exactly the queued deployments the pure relevance filter
  matches, not yet seen, in queue order, cut at the limit; driven by it, the incremental pass
  decides what the full pass decides;
* `position_and_insight`'s position (counting up to 64 ahead, else from the end of the queue)
  and the positions `views` attaches are the 1-based ranks in `QUEUE` order;
* end to end: `place_newcomer` and `reschedule` (after completions, a capacity change, a released
  dependent) leave the rows, the events and the cluster's books exactly as the full recomputation
  `schedule(...)` decides: same starts, same victims (in order), same failures.

Shrinking is off: the rows come from a seed, so a smaller seed is not a simpler world, and each
example costs a few thousand rows; Hypothesis prints the failing `WorldSpec`, which rebuilds it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.core.config import normalize_database_url
from app.models import Cluster, Deployment, DeploymentEvent, DeploymentStatus
from app.scheduling import (
    Band,
    Decision,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    RunningSet,
    get_strategy,
    relevance_filter,
    schedule,
    schedule_incremental,
)
from app.scheduling.reprieve import deficit, settles, tail_length, victims_in_tail
from app.services.deployment_views import (
    _RANK_CAP as RANK_CAP,  # past this many ahead, a rank is counted from the end of the queue
)
from app.services.deployment_views import position_and_insight, views
from app.services.placement import place_newcomer, reschedule
from app.services.placement.statements import (
    _TAIL_PAGE as TAIL_PAGE,
)
from app.services.placement.statements import (
    fetch_relevant,
    load_running,
    lower_priority_total,
    tail_candidates,
)
from tests.scheduling.oracle import T0, apply, kube_victims
from tests.support.sql_worlds import (
    ENDED,
    QUEUE_KEY,
    SqlWorld,
    WorldSpec,
    assert_books,
    build_world,
    insert_world,
    insert_world_async,
    lower_candidates,
    read_rows,
    resources_of,
    row,
    short,
    world_specs,
)

PRIORITY = get_strategy("priority")
LATE = T0 + timedelta(days=2)

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    "phases": (Phase.explicit, Phase.reuse, Phase.generate),
}


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> Iterator[Engine]:
    built = create_engine(normalize_database_url(postgres_url))
    yield built
    built.dispose()


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Session]:
    """A session like the app's (no autoflush) whose whole transaction is thrown away: nothing an
    example writes outlives it, and its rows live in clusters of their own, so rows other tests
    left behind are never read."""
    with Session(engine, autoflush=False) as session:
        try:
            yield session
        finally:
            session.rollback()


def first_difference(got: Sequence[Any], expected: Sequence[Any]) -> str:
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"first difference at {index}: got {a}, expected {b}"
    return f"got {len(got)} rows, expected {len(expected)}"


# -- the tail of the preemption candidates -------------------------------------------------------


def expected_tail(missing: Resources, lowest_first: list[RunningDeployment]) -> list[Any]:
    """What `tail_candidates` promises, from `reprieve`'s definitions on the candidates sorted in
    Python: the candidates before the first one whose predecessors cover `missing`; when no
    proper prefix covers it, every candidate if they are fewer than a page or cover it together,
    else none (the window query's answer: evicting all of them would not make room)."""
    end = tail_length(missing, lowest_first)
    if end is not None:
        return lowest_first[:end]
    if len(lowest_first) < TAIL_PAGE or missing.fits_in(resources_of(lowest_first)):
        return lowest_first
    return []


def probe_priorities(levels: tuple[int, ...]) -> list[int]:
    """Newcomer priorities: at each running level (candidates strictly below it), just above it
    (the level itself becomes candidates), and the extremes."""
    return sorted({0, 1000, *levels, *(min(level + 1, 1000) for level in levels)})


def probe_deficits(rng: random.Random, candidates: list[RunningDeployment]) -> list[Resources]:
    """Deficits on the boundaries the statements decide: exactly the sum of the first k
    candidates (lowest first) and one off it, for k within the first page and past it, one
    dimension from one prefix and another from another, all of them, more than all of them."""
    prefix = [Resources.zero()]
    for candidate in candidates:
        prefix.append(prefix[-1] + candidate.resources)
    count = len(candidates)
    ks = [rng.randint(0, min(count, TAIL_PAGE)), count]
    if count > TAIL_PAGE:
        ks += [TAIL_PAGE, rng.randint(TAIL_PAGE + 1, count)]
    deficits: list[Resources] = []
    for k in ks:
        deficits.append(prefix[k])
        nudge = [0, 0, 0]
        nudge[rng.randrange(3)] = rng.choice([-1, 1])
        deficits.append(prefix[k] + Resources(*nudge))
    deficits.append(
        Resources(
            prefix[rng.randint(0, count)].cpu_millis,
            prefix[rng.randint(0, count)].ram_millis,
            prefix[rng.randint(0, count)].gpu,
        )
    )
    deficits.append(prefix[-1] + Resources(0, 1, 0))
    return [Resources(max(0, d.cpu_millis), max(0, d.ram_millis), max(0, d.gpu)) for d in deficits]


def need_for(rng: random.Random, available: Resources, missing: Resources) -> Resources:
    """A request that misses exactly `missing` (a dimension not missing: anything that fits)."""

    def one(free: int, lacking: int) -> int:
        return free + lacking if lacking else rng.randint(0, free)

    return Resources(
        one(available.cpu_millis, missing.cpu_millis),
        one(available.ram_millis, missing.ram_millis),
        one(available.gpu, missing.gpu),
    )


@settings(max_examples=15, **_COMMON)
@given(spec=world_specs())
def test_tail_query_gives_the_strategys_victims(engine: Engine, spec: WorldSpec) -> None:
    sql_world = build_world(spec)
    rng, world, cid = sql_world.rng, sql_world.world, sql_world.cluster_id
    running = list(world.running.values())
    running_set = RunningSet(running)
    available = world.capacity - world.allocated()
    branches: set[str] = set()
    with rolled_back(engine) as session:
        insert_world(session, sql_world)
        loaded = load_running(session, cid)
        assert sorted(loaded, key=lambda r: r.id) == sorted(running, key=lambda r: r.id)
        for priority in probe_priorities(spec.levels):
            candidates = lower_candidates(running, priority)
            total_below = lower_priority_total(session, cid, priority)
            assert total_below == resources_of(candidates), f"priority {priority}"
            for missing in probe_deficits(rng, candidates):
                need = need_for(rng, available, missing)
                assert deficit(need, available) == missing
                tail = tail_candidates(session, cid, priority, missing)
                expected = expected_tail(missing, candidates)
                context = (
                    f"newcomer priority {priority}, missing {missing}, {len(candidates)} candidates"
                )
                assert tail == expected, (
                    f"{context}: SQL tail {short(tail)} != expected {short(expected)}; "
                    + first_difference(tail, expected)
                )
                if tail_length(missing, candidates[:TAIL_PAGE]) is not None:
                    branches.add("first page")
                elif len(candidates) < TAIL_PAGE:
                    branches.add("every candidate, in the first page")
                else:
                    branches.add("window sums")

                newcomer = PendingDeployment(sql_world.new_id(), priority, need, LATE, True)
                victims = victims_in_tail(need, available, tail)
                whole = PRIORITY.select_victims(newcomer, running_set, available)
                assert victims == whole, (
                    f"{context}: victims from the SQL tail {short(victims or [])} != the "
                    f"strategy's over every running deployment {short(whole or [])}"
                )
                oracle = kube_victims(newcomer, running, available)
                assert (victims or []) == oracle, (
                    f"{context}: victims {short(victims or [])} != oracle {short(oracle)}"
                )
                event("evicts" if victims else "no eviction")
    for branch in sorted(branches):
        event(f"tail: {branch}")
    if any(len(lower_candidates(running, p)) > TAIL_PAGE for p in probe_priorities(spec.levels)):
        assert "window sums" in branches, "no probe needed more than the first page"


# -- the relevance filter as SQL ---------------------------------------------------------------


def random_filter(rng: random.Random, capacity: Resources, levels: tuple[int, ...]) -> Any:
    """Any filter, not only those a running set gives: every shape of bands (bounded or not,
    none to eight), arbitrary bounds and limits."""

    def upto(share: float) -> Resources:
        return Resources(
            rng.randint(0, int(capacity.cpu_millis * share)),
            rng.randint(0, int(capacity.ram_millis * share)),
            rng.randint(0, int(capacity.gpu * share)),
        )

    starts = sorted(
        {
            rng.choice([*levels, *(min(level + 1, 1000) for level in levels)])
            if rng.random() < 0.7
            else rng.randint(0, 1000)
            for _ in range(rng.randint(0, 8))
        }
    )
    bands = []
    for index, low in enumerate(starts):
        if index + 1 < len(starts):
            high: int | None = starts[index + 1] - 1
        else:
            high = None if rng.random() < 0.5 else rng.randint(low, 1000)
        bands.append(Band(low, high, upto(rng.uniform(0.05, 1.0))))
    return RelevanceFilter(
        upto(rng.choice([0.0, 0.05, 0.3])),
        capacity if rng.random() < 0.5 else upto(1.0),
        tuple(bands),
        rng.choice([None, 1, 3, 64, 100, 1000]),
    )


def seen_sets(
    rng: random.Random, sql_world: SqlWorld, queue: list[PendingDeployment], flt: RelevanceFilter
) -> list[frozenset[uuid.UUID]]:
    """Nothing seen; a random tenth of the queue with ids that are not in it; the first matches,
    as the driver hands back what it fetched before."""
    matching = [item.id for item in queue if flt.matches(item)]
    sample = rng.sample([item.id for item in queue], len(queue) // 10)
    strangers = [*list(sql_world.waiting)[:5], *list(sql_world.world.running)[:5]]
    return [
        frozenset(),
        frozenset(sample + strangers),
        frozenset(matching[: rng.randint(0, len(matching))]),
    ]


@settings(max_examples=15, **_COMMON)
@given(spec=world_specs(strategies=("priority", "none")))
def test_fetch_returns_what_the_relevance_filter_selects(engine: Engine, spec: WorldSpec) -> None:
    sql_world = build_world(spec)
    rng, world, cid = sql_world.rng, sql_world.world, sql_world.cluster_id
    queue = sorted(world.pending.values(), key=QUEUE_KEY)
    running = list(world.running.values())
    filters = [
        relevance_filter(
            world.capacity,
            running,
            preemption=preemption,
            limit=rng.choice([None, 1, 100]),
            max_bands=max_bands,
        )
        for preemption in (True, False)
        for max_bands in (1, 2, 8)
    ]
    filters += [random_filter(rng, world.capacity, spec.levels) for _ in range(8)]
    with rolled_back(engine) as session:
        insert_world(session, sql_world)
        returned = 0
        for flt in filters:
            for seen in seen_sets(rng, sql_world, queue, flt):
                got = fetch_relevant(session, cid, flt, seen)
                expected = [p for p in queue if p.id not in seen and flt.matches(p)][: flt.limit]
                assert got == expected, (
                    f"{flt} with {len(seen)} seen: SQL {short(got)} != pure {short(expected)}; "
                    + first_difference(got, expected)
                )
                returned += len(got)
        event("fetched rows" if returned else "filters matched nothing")


# -- queue positions -----------------------------------------------------------------------------


def sample_ranks(rng: random.Random, length: int) -> list[int]:
    near_cap = range(RANK_CAP - 2, RANK_CAP + 4)
    picks = {1, 2, 3, length - 1, length, *near_cap, *(rng.randint(1, length) for _ in range(12))}
    return sorted(rank for rank in picks if 1 <= rank <= length)


async def _check_queue_positions(url: str, sql_world: SqlWorld) -> None:
    engine = create_async_engine(normalize_database_url(url), poolclass=NullPool)
    try:
        async with AsyncSession(engine, autoflush=False, expire_on_commit=False) as db:
            await insert_world_async(db, sql_world)
            queue = sorted(sql_world.world.pending.values(), key=QUEUE_KEY)
            rank = {item.id: n for n, item in enumerate(queue, start=1)}
            picked = [queue[r - 1].id for r in sample_ranks(sql_world.rng, len(queue))]
            unranked = [
                *list(sql_world.waiting)[:5],
                *list(sql_world.world.running)[:5],
                *(r["id"] for r in sql_world.ended[:5]),
            ]
            loaded = await db.scalars(
                select(Deployment).where(Deployment.id.in_([*picked, *unranked]))
            )
            rows = {d.id: d for d in loaded}
            for deployment_id in picked:
                got, _ = await position_and_insight(db, rows[deployment_id])
                assert got == rank[deployment_id], (
                    f"position_and_insight {deployment_id.hex[:8]}: {got}, expected "
                    f"{rank[deployment_id]} of {len(queue)} queued"
                )
            listed = await views(db, [rows[i] for i in [*picked, *unranked]])
            for view in listed:
                expected = rank.get(view.deployment.id)
                assert view.queue_position == expected, (
                    f"views: {view.deployment.id.hex[:8]} ({view.deployment.status}) at "
                    f"{view.queue_position}, expected {expected} of {len(queue)} queued"
                )
            await db.rollback()
    finally:
        await engine.dispose()


@settings(max_examples=16, **_COMMON)
@given(
    spec=world_specs(running=(20, 80), queued=st.sampled_from([1, 40, 64, 65, 66, 130, 1500, 3000]))
)
def test_queue_positions_are_ranks_in_the_queue(postgres_url: str, spec: WorldSpec) -> None:
    event("more than 64 queued" if spec.queued > RANK_CAP else "64 queued or fewer")
    asyncio.run(_check_queue_positions(postgres_url, build_world(spec)))


# -- end to end: the service's passes against the full recomputation --------------------------


class Mirror:
    """The database world and its Python twin, moved step by step: the service acts on the rows,
    the full pure pass on the twin, and after every step both must hold the same state."""

    def __init__(self, session: Session, sql_world: SqlWorld) -> None:
        self.session = session
        self.sql_world = sql_world
        self.world = sql_world.world
        self.rng = sql_world.rng
        self.cluster_id = sql_world.cluster_id
        self.failed: set[uuid.UUID] = set()
        self.reasons: dict[uuid.UUID, str | None] = {
            i: ("preempted" if sql_world.preemptions.get(i) else None) for i in self.world.pending
        }
        self.reasons.update((i, None) for i in self.world.running)
        self.last_event = 0

    @property
    def cluster(self) -> Cluster:
        cluster = self.session.get(Cluster, self.cluster_id)
        assert cluster is not None
        return cluster

    def strategy_name(self) -> str:
        return self.cluster.preemption_strategy

    def full_pass(self, now: datetime, newcomers: Sequence[PendingDeployment] = ()) -> Decision:
        return schedule(
            self.world.capacity,
            list(self.world.running.values()),
            [*self.world.pending.values(), *newcomers],
            get_strategy(self.strategy_name()),
            now,
        )

    # -- steps: each changes the rows as the service does, runs its pass, returns the expected

    def newcomer(self, now: datetime) -> tuple[Decision, str]:
        sql_world, rng = self.sql_world, self.rng
        levels = sql_world.spec.levels
        roll = rng.random()
        if roll < 0.5:  # above every running level: every running deployment is a candidate
            priority = rng.choice([levels[-1] + 1, 1000])
        elif roll < 0.8:
            priority = rng.choice(levels) + 1
        else:
            priority = rng.choice([0, *levels])
        priority = min(priority, 1000)
        need = self._need(priority)
        item = PendingDeployment(sql_world.new_id(), priority, need, now, rng.random() < 0.9)
        expected = self.full_pass(now, [item])
        label = self._newcomer_path(item)

        self.session.execute(
            insert(Deployment),
            row(
                sql_world,
                self.cluster_id,
                item.id,
                priority,
                need,
                now,
                item.may_preempt,
                DeploymentStatus.pending,
            ),
        )
        cluster = self.cluster
        cluster.pending_count += 1
        self.session.flush()
        deployment = self.session.get(Deployment, item.id)
        assert deployment is not None
        place_newcomer(self.session, cluster, deployment, now)
        self.world.pending[item.id] = item
        self.reasons[item.id] = None
        return expected, label

    def _need(self, priority: int) -> Resources:
        """What a newcomer asks for: a little of what is free; exactly what the lowest k
        candidates hold on top of it (their eviction then frees no more than it takes: the
        settled case); or a share of the capacity."""
        rng, world = self.rng, self.world
        available = world.capacity - world.allocated()
        roll = rng.random()
        if roll < 0.15 and not available.is_zero():
            need = Resources(
                rng.randint(0, available.cpu_millis),
                rng.randint(0, available.ram_millis),
                rng.randint(0, available.gpu),
            )
        elif roll < 0.55:
            candidates = lower_candidates(world.running.values(), priority)
            k = rng.randint(1, max(1, min(len(candidates), 4 * TAIL_PAGE)))
            need = available + resources_of(candidates[:k])
        else:
            low, high = rng.choice([(0.0, 0.02), (0.02, 0.1), (0.1, 0.3), (0.3, 0.7)])
            need = self.sql_world.share_of_capacity(low, high)
        return need if not need.is_zero() else Resources(1)

    def _newcomer_path(self, item: PendingDeployment) -> str:
        """Which way `place_newcomer` should go, for the statistics."""
        available = self.world.capacity - self.world.allocated()
        if item.resources.fits_in(available):
            return "newcomer starts"
        if not item.may_preempt or self.strategy_name() == "none" or item.priority == 0:
            return "newcomer may not preempt"
        victims = PRIORITY.select_victims(item, RunningSet(self.world.running.values()), available)
        if victims is None:
            return "newcomer cannot get room"
        size = "window" if len(victims) > TAIL_PAGE else "page"
        if settles(item.resources, victims):
            return f"newcomer evicts, settled ({size})"
        return f"newcomer evicts, then a pass ({size})"

    def complete(self, now: datetime) -> tuple[Decision, str]:
        running = sorted(self.world.running)
        if not running:
            return self.newcomer(now)
        ended = self.rng.sample(running, self.rng.randint(1, max(1, len(running) // 8)))
        self.session.execute(
            update(Deployment)
            .where(Deployment.id.in_(ended))
            .values(status=DeploymentStatus.completed, finished_at=now)
        )
        cluster = self.cluster
        cluster.allocated = cluster.allocated - resources_of(self.world.running[i] for i in ended)
        cluster.running_count -= len(ended)
        for deployment_id in ended:
            del self.world.running[deployment_id]
        expected = self.full_pass(now)
        self.small_pages(now)
        reschedule(self.session, cluster, now)
        return expected, "completions"

    def resize(self, now: datetime) -> tuple[Decision, str]:
        rng, cluster = self.rng, self.cluster
        allocated = self.world.allocated()
        spare = self.world.capacity - allocated

        def one(used: int, free: int, typical: int) -> int:
            return used + rng.choice([0, free // 3, free, 2 * free + typical])

        capacity = Resources(
            one(allocated.cpu_millis, spare.cpu_millis, 1000),
            one(allocated.ram_millis, spare.ram_millis, 2000),
            one(allocated.gpu, spare.gpu, 1),
        )
        label = "capacity change"
        if rng.random() < 0.3:
            cluster.preemption_strategy = (
                "none" if self.strategy_name() == "priority" else "priority"
            )
            label += " and strategy change"
        cluster.capacity = capacity
        self.world.capacity = capacity
        expected = self.full_pass(now)
        self.small_pages(now)
        reschedule(self.session, cluster, now)
        return expected, label

    def release(self, now: datetime) -> tuple[Decision, str]:
        if not self.sql_world.waiting:
            return self.newcomer(now)
        released = self.rng.choice(sorted(self.sql_world.waiting))
        item, _ = self.sql_world.waiting.pop(released)
        self.session.execute(
            update(Deployment).where(Deployment.id == released).values(unmet_dependencies=0)
        )
        expected = self.full_pass(now, [item])
        reschedule(self.session, self.cluster, now, newcomers=[item], at_fixpoint=True)
        self.world.pending[item.id] = item
        self.reasons[item.id] = None
        return expected, "released dependent"

    def small_pages(self, now: datetime) -> None:
        """Before the service's pass: the incremental pass driven by the SQL fetch with pages of
        7 (a horizon, refills, `seen` growing) decides what the full pass decides."""
        self.session.flush()
        cluster = self.cluster

        def fetch(flt: RelevanceFilter, seen: Any) -> list[PendingDeployment]:
            return fetch_relevant(self.session, self.cluster_id, flt, seen)

        running = load_running(self.session, self.cluster_id)
        strategy = get_strategy(cluster.preemption_strategy)
        paged = schedule_incremental(
            cluster.capacity, running, [], fetch, strategy, now, page_size=7
        )
        full = self.full_pass(now)
        assert (paged.started, paged.evicted) == (full.started, full.evicted), "pages of 7"
        assert sorted(paged.failed) == sorted(full.failed), "pages of 7: failures"

    # -- the comparison

    def check(self, expected: Decision, now: datetime, step: str) -> None:
        session = self.session
        session.flush()
        session.expire_all()
        apply(self.world, expected, now)
        for eviction in expected.evicted:
            self.sql_world.preemptions[eviction.victim_id] = (
                self.sql_world.preemptions.get(eviction.victim_id, 0) + 1
            )
            self.reasons[eviction.victim_id] = "preempted"
        for started in expected.started:
            self.reasons[started] = None
        self.failed.update(expected.failed)

        events = session.execute(
            select(
                DeploymentEvent.id,
                DeploymentEvent.deployment_id,
                DeploymentEvent.type,
                DeploymentEvent.detail,
            )
            .where(DeploymentEvent.id > self.last_event)
            .order_by(DeploymentEvent.id)
        ).all()
        if events:
            self.last_event = events[-1][0]
        preempted = [(e[1], uuid.UUID(e[3]["preempted_by"])) for e in events if e[2] == "preempted"]
        wanted = [(e.victim_id, e.preemptor_id) for e in expected.evicted]
        assert preempted == wanted, (
            f"{step}: victims (victim, preemptor) {[(v.hex[:8], p.hex[:8]) for v, p in preempted]}"
            f" != the full pass's {[(v.hex[:8], p.hex[:8]) for v, p in wanted]}"
        )
        requeued = [e[1] for e in events if e[2] == "requeued"]
        assert requeued == [e.victim_id for e in expected.evicted], f"{step}: requeued events"
        scheduled = [e[1] for e in events if e[2] == "scheduled"]
        assert scheduled == expected.started, (
            f"{step}: starts {short(scheduled)} != the full pass's {short(expected.started)}"
        )
        failed = {e[1] for e in events if e[2] == "failed"}
        assert failed == set(expected.failed), f"{step}: failures differ"

        rows = read_rows(session, self.cluster_id)
        by_status: dict[str, set[uuid.UUID]] = {}
        for deployment_id, state in rows.items():
            key = state.status.value
            if state.status == DeploymentStatus.pending and state.unmet:
                key = "waiting"
            by_status.setdefault(key, set()).add(deployment_id)
        assert by_status.get("running", set()) == set(self.world.running), f"{step}: running"
        assert by_status.get("pending", set()) == set(self.world.pending), f"{step}: queued"
        assert by_status.get("waiting", set()) == set(self.sql_world.waiting), f"{step}: waiting"
        initially_failed = {
            r["id"] for r in self.sql_world.ended if r["status"] == DeploymentStatus.failed
        }
        assert by_status.get("failed", set()) == initially_failed | self.failed, f"{step}: failed"
        for deployment_id, run in self.world.running.items():
            assert rows[deployment_id].started_at == run.started_at, f"{step}: started_at"
        for deployment_id in (*self.world.running, *self.world.pending):
            state = rows[deployment_id]
            assert state.preemption_count == self.sql_world.preemptions.get(deployment_id, 0), (
                f"{step}: preemption_count of {deployment_id.hex[:8]}"
            )
            assert state.status_reason == self.reasons[deployment_id], (
                f"{step}: status_reason of {deployment_id.hex[:8]}"
            )
        assert_books(session, [self.cluster_id, self.sql_world.other_cluster_id])


def settle(sql_world: SqlWorld, now: datetime) -> None:
    """Bring the twin to its fixpoint with the full pass, as every transaction leaves a cluster:
    `place_newcomer` relies on it."""
    world = sql_world.world
    decision = schedule(
        world.capacity,
        list(world.running.values()),
        list(world.pending.values()),
        get_strategy(sql_world.spec.strategy),
        now,
    )
    failed = {i: world.pending[i] for i in decision.failed}
    apply(world, decision, now)
    for eviction in decision.evicted:
        previous = sql_world.preemptions.get(eviction.victim_id, 0)
        sql_world.preemptions[eviction.victim_id] = previous + 1
    for started in decision.started:
        if sql_world.preemptions.get(started) is None:
            sql_world.preemptions[started] = 0
    for item in failed.values():
        sql_world.ended.append(
            row(
                sql_world,
                sql_world.cluster_id,
                item.id,
                item.priority,
                item.resources,
                item.created_at,
                item.may_preempt,
                DeploymentStatus.failed,
            )
        )


STEPS = ("newcomer", "newcomer", "newcomer", "newcomer", "complete", "resize", "release")


@settings(max_examples=16, **_COMMON)
@given(
    spec=world_specs(
        running=(100, 300),
        queued=st.integers(500, 2000),
        strategies=("priority", "priority", "none"),
    ),
    steps=st.lists(st.sampled_from(STEPS), min_size=4, max_size=12),
)
def test_placement_applies_what_the_full_pass_decides(
    engine: Engine, spec: WorldSpec, steps: list[str]
) -> None:
    sql_world = build_world(spec)
    now = T0 + timedelta(days=1)
    settle(sql_world, now)
    assert sql_world.ended, "the world keeps ended rows"
    with rolled_back(engine) as session:
        insert_world(session, sql_world)
        mirror = Mirror(session, sql_world)
        # Other tests may have left rows in the database: only events after these are this step's.
        mirror.last_event = session.scalar(select(func.max(DeploymentEvent.id))) or 0
        actions: dict[str, Callable[[datetime], tuple[Decision, str]]] = {
            "newcomer": mirror.newcomer,
            "complete": mirror.complete,
            "resize": mirror.resize,
            "release": mirror.release,
        }
        for number, kind in enumerate(steps, start=1):
            if sql_world.rng.random() < 0.7:  # else the same instant: started_at ties
                now += timedelta(minutes=1)
            expected, label = actions[kind](now)
            event(label)
            mirror.check(expected, now, f"step {number} ({label})")


def test_world_rows_cover_every_status() -> None:
    """The worlds hold the rows the statements must skip (a check of the generator itself)."""
    sql_world = build_world(WorldSpec(7, (1, 5), 50, 2000, 10, 4, "mixed"))
    statuses = {r["status"] for r in sql_world.ended}
    assert statuses == set(ENDED)
    assert sql_world.waiting
    assert any(
        not item.resources.fits_in(sql_world.world.capacity)
        for item in sql_world.world.pending.values()
    )
