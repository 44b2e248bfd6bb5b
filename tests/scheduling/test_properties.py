"""Property tests: random clusters, random event sequences, the scheduler's guarantees after each.

Each event is followed by the pass the service would run. Three schedulers see the same state:
the full `schedule` over every pending deployment, the incremental driver with an in-memory fetch
that applies the relevance filter, and a naive reference that literally repeats "the first
pending deployment in scheduling order that can act, acts". Their decisions must agree, and the
state the full pass reaches must satisfy the invariants of the API contract.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from app.scheduling import (
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    RunningSet,
    get_strategy,
    schedule,
    schedule_incremental,
    total,
)
from app.scheduling.entities import RuntimeLimits
from app.scheduling.fitindex import FitIndex
from tests.scheduling.oracle import (
    T0,
    World,
    apply,
    assert_filter_is_superset,
    assert_fixpoint,
    assert_preemptions,
    in_memory_fetch,
    limits_st,
    reference,
    resources_st,
    sweep,
    world_from_specs,
)

# -- events ----------------------------------------------------------------------------------


capacity_st = st.builds(
    Resources,
    st.integers(1, 8).map(lambda n: n * 500),
    st.integers(1, 6).map(lambda n: n * 1000),
    st.integers(0, 3),
)


def _event(kind: str) -> st.SearchStrategy[tuple[object, ...]]:
    if kind == "create":
        return st.tuples(
            st.just(kind),
            st.integers(0, 6),
            resources_st,
            st.sampled_from([True, True, False]),
            limits_st,
        )
    if kind == "grow":
        return st.tuples(st.just(kind), capacity_st)
    if kind == "shrink":
        return st.tuples(st.just(kind), st.integers(0, 3))
    return st.tuples(st.just(kind), st.integers(0, 1000))


# Mostly arrivals, so that clusters fill up and preemption has work to do.
event_st = st.sampled_from(
    ["create"] * 6 + ["finish", "finish", "cancel_pending", "grow", "shrink"]
).flatmap(_event)


def happen(world: World, event: tuple[object, ...]) -> tuple[list[PendingDeployment], bool]:
    """Apply one event; return the newcomers and whether the cluster is still at its fixpoint."""
    kind = event[0]
    if kind == "create":
        _, priority, resources, may_preempt, limits = event
        assert isinstance(priority, int) and isinstance(resources, Resources)
        assert isinstance(limits, RuntimeLimits)
        world.serial += 1
        item = PendingDeployment(
            UUID(int=world.serial), priority, resources, world.clock, bool(may_preempt), limits
        )
        world.pending[item.id] = item
        return [item], True
    if kind == "finish" and world.running:
        index = event[1]
        assert isinstance(index, int)
        del world.running[sorted(world.running)[index % len(world.running)]]
        return [], False
    if kind == "cancel_pending" and world.pending:
        index = event[1]
        assert isinstance(index, int)
        del world.pending[sorted(world.pending)[index % len(world.pending)]]
        return [], True  # removing a waiting deployment frees nothing
    if kind == "grow":
        delta = event[1]
        assert isinstance(delta, Resources)
        world.capacity = world.capacity + delta
        return [], False
    if kind == "shrink":
        quarters = event[1]
        assert isinstance(quarters, int)
        spare = world.capacity - world.allocated()
        world.capacity = world.allocated() + Resources(
            spare.cpu_millis * quarters // 4,
            spare.ram_millis * quarters // 4,
            spare.gpu * quarters // 4,
        )
        return [], False
    return [], True


@settings(max_examples=250, deadline=None)
@given(
    capacity=capacity_st,
    events=st.lists(event_st, min_size=15, max_size=50),
    strategy_name=st.sampled_from(["priority", "priority", "none"]),
    page_size=st.sampled_from([1, 2, 3, 100]),
    max_bands=st.sampled_from([1, 2, 8]),
)
def test_every_pass_keeps_the_contract(
    capacity: Resources,
    events: list[tuple[object, ...]],
    strategy_name: str,
    page_size: int,
    max_bands: int,
) -> None:
    strategy = get_strategy(strategy_name)
    world = World(capacity)
    for event in events:
        world.clock += timedelta(minutes=1)
        now = world.clock
        swept = sweep(world)  # as the service's sweeper: deadlines end runs, protections lapse
        newcomers, at_fixpoint = happen(world, event)
        at_fixpoint = at_fixpoint and not swept
        assert_filter_is_superset(world, strategy, max_bands)
        running = sorted(world.running.values(), key=lambda r: r.id)
        priority_of = {r.id: r.priority for r in running}
        priority_of.update((p.id, p.priority) for p in world.pending.values())

        full = schedule(world.capacity, running, list(world.pending.values()), strategy, now)

        expected, log = reference(world, strategy.evicts, now)
        assert full.started == expected.started
        assert full.evicted == expected.evicted
        assert sorted(full.failed) == sorted(expected.failed)
        assert_preemptions(log)

        calls: list[RelevanceFilter] = []
        incremental = schedule_incremental(
            world.capacity,
            running,
            newcomers,
            in_memory_fetch(world, calls),
            strategy,
            now,
            at_fixpoint=at_fixpoint,
            page_size=page_size,
            max_bands=max_bands,
        )
        assert incremental.started == full.started
        assert incremental.evicted == full.evicted
        assert sorted(incremental.failed) == sorted(full.failed)
        if page_size == 100:  # no page is ever full: one fetch up front, one per preemption
            preemptors = {e.preemptor_id for e in full.evicted}
            assert len(calls) <= (0 if at_fixpoint else 1) + len(preemptors)

        for eviction in full.evicted:
            assert priority_of[eviction.victim_id] < priority_of[eviction.preemptor_id]
            assert world.running[eviction.victim_id].protected_until is None, "evicted protected"
        apply(world, full, now)
        for eviction in full.evicted:
            assert eviction.preemptor_id in world.running
        assert world.allocated().fits_in(world.capacity)
        assert_fixpoint(world, strategy)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.booleans(), st.integers(-3, 6), resources_st, st.integers(0, 50), st.booleans()
        ),
        max_size=30,
    ),
    probe=st.integers(-4, 8),
)
def test_running_set_matches_a_scan(
    ops: list[tuple[bool, int, Resources, int, bool]], probe: int
) -> None:
    live: dict[UUID, RunningDeployment] = {}
    running = RunningSet([], priorities=[0])
    for serial, (add, priority, resources, minute, protected) in enumerate(ops):
        if add or not live:
            at = T0 + timedelta(minutes=minute)
            until = at + timedelta(minutes=5) if protected else None
            item = RunningDeployment(
                UUID(int=serial), priority, resources, at, at, True, protected_until=until
            )
            live[item.id] = item
            running.add(item)
        else:
            victim = sorted(live)[minute % len(live)]
            del live[victim]
            running.remove(victim)
        # Protected deployments hold resources but are nobody's candidates.
        lower = [r for r in live.values() if r.priority < probe and r.protected_until is None]
        assert running.lower_total(probe) == total(r.resources for r in lower)
        expected = sorted(lower, key=lambda r: (-r.priority, r.started_at, r.id))
        assert list(running.lower_in_reprieve_order(probe)) == expected
        assert running.total == total(r.resources for r in live.values())
        shielded = [r for r in live.values() if r.priority < probe and r.protected_until]
        assert sorted(running.protected_below(probe), key=lambda r: r.id) == sorted(
            shielded, key=lambda r: r.id
        )


deployment_st = st.tuples(st.integers(0, 6), resources_st, st.sampled_from([True, True, False]))

# Roomier than the deployments, so that few fail outright and the cluster is busy.
roomy_capacity_st = st.builds(
    Resources,
    st.integers(4, 12).map(lambda n: n * 500),
    st.integers(4, 10).map(lambda n: n * 1000),
    st.integers(1, 3),
)

# One dominant dimension and a wide spread of priorities: chains of preemptions, where a victim
# of one preemptor is requeued and runs again after a later one frees room.
cascade_deployment_st = st.tuples(
    st.integers(0, 13),
    st.builds(Resources, st.sampled_from([500, 1000, 1500, 2000, 3000])),
    st.sampled_from([True, True, True, False]),
)


def check_one_pass(
    capacity: Resources,
    running_specs: list[tuple[int, Resources, bool]],
    pending_specs: list[tuple[int, Resources, bool]],
    strategy_name: str,
    page_size: int,
    max_bands: int,
) -> None:
    strategy = get_strategy(strategy_name)
    world = world_from_specs(capacity, running_specs, pending_specs)
    now = T0 + timedelta(hours=1)
    running = list(world.running.values())

    full = schedule(capacity, running, list(world.pending.values()), strategy, now)
    expected, log = reference(world, strategy.evicts, now)
    assert (full.started, full.evicted) == (expected.started, expected.evicted)
    assert sorted(full.failed) == sorted(expected.failed)
    assert_preemptions(log)
    # Not from a fixpoint: the driver fetches up front, and must still match the full pass.
    incremental = schedule_incremental(
        capacity,
        running,
        [],
        in_memory_fetch(world, []),
        strategy,
        now,
        page_size=page_size,
        max_bands=max_bands,
    )
    assert (incremental.started, incremental.evicted) == (full.started, full.evicted)
    assert sorted(incremental.failed) == sorted(full.failed)
    apply(world, full, now)
    assert world.allocated().fits_in(capacity)
    assert_fixpoint(world, strategy)


@settings(max_examples=300, deadline=None)
@given(
    capacity=roomy_capacity_st,
    running_specs=st.lists(deployment_st, min_size=2, max_size=12),
    pending_specs=st.lists(deployment_st, min_size=2, max_size=16),
    strategy_name=st.sampled_from(["priority", "priority", "none"]),
    page_size=st.sampled_from([1, 2, 100]),
    max_bands=st.sampled_from([1, 2, 8]),
)
def test_one_pass_from_any_state(
    capacity: Resources,
    running_specs: list[tuple[int, Resources, bool]],
    pending_specs: list[tuple[int, Resources, bool]],
    strategy_name: str,
    page_size: int,
    max_bands: int,
) -> None:
    check_one_pass(capacity, running_specs, pending_specs, strategy_name, page_size, max_bands)


@settings(max_examples=400, deadline=None)
@given(
    cpu=st.integers(8, 14).map(lambda n: n * 500),
    running_specs=st.lists(cascade_deployment_st, min_size=4, max_size=12),
    pending_specs=st.lists(cascade_deployment_st, min_size=2, max_size=10),
    page_size=st.sampled_from([1, 100]),
)
def test_preemption_chains(
    cpu: int,
    running_specs: list[tuple[int, Resources, bool]],
    pending_specs: list[tuple[int, Resources, bool]],
    page_size: int,
) -> None:
    running_specs = [(p % 10, r, m) for p, r, m in running_specs]
    check_one_pass(Resources(cpu), running_specs, pending_specs, "priority", page_size, 2)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(st.one_of(st.none(), resources_st), min_size=1, max_size=40),
    updates=st.lists(st.tuples(st.integers(0, 39), st.one_of(st.none(), resources_st))),
    available=resources_st,
    hi=st.integers(0, 40),
)
def test_fit_index_finds_the_leftmost_fit(
    entries: list[Resources | None],
    updates: list[tuple[int, Resources | None]],
    available: Resources,
    hi: int,
) -> None:
    index = FitIndex(entries)
    for position, value in updates:
        if position < len(entries):
            entries[position] = value
            index.set(position, value)
    fitting = [i for i, e in enumerate(entries[:hi]) if e is not None and e.fits_in(available)]
    assert index.first_fit(available, hi) == (fitting[0] if fitting else None)
