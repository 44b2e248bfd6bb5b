"""The newcomer's preemption from the tail of the candidates (`app.scheduling.reprieve`), as the
service runs it, against the strategy over the whole running set and against a full pass."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.scheduling import (
    Eviction,
    PendingDeployment,
    Resources,
    RunningDeployment,
    RunningSet,
    get_strategy,
    schedule,
)
from app.scheduling.ordering import REPRIEVE
from app.scheduling.reprieve import deficit, settles, tail_length, victims_in_tail
from tests.scheduling.oracle import T0, apply, resources_st, world_from_specs

PRIORITY = get_strategy("priority")


# Mixed shapes, or all alike in one dimension (where evictions free exactly what is needed).
any_resources_st = st.one_of(resources_st, st.builds(Resources, st.sampled_from([500, 1000])))
spec_st = st.tuples(st.integers(0, 6), any_resources_st, st.sampled_from([True, True, False]))


def pure_tail(
    need: Resources, available: Resources, running: list[RunningDeployment], priority: int
) -> list[RunningDeployment]:
    """The tail as `reprieve.tail_length` defines it: the candidates lowest first, up to the first
    whose predecessors cover the deficit (all of them when none does). The SQL that loads it a page
    at a time is checked against this on PostgreSQL in tests/services/test_sql_mirrors.py."""
    lowest_first = sorted(
        (r for r in running if r.priority < priority), key=REPRIEVE.reversed().sort_key()
    )
    end = tail_length(deficit(need, available), lowest_first)
    return lowest_first if end is None else lowest_first[:end]


@settings(max_examples=400, deadline=None)
@given(
    capacity=st.builds(
        Resources,
        st.integers(4, 16).map(lambda n: n * 500),
        st.integers(4, 10).map(lambda n: n * 1000),
        st.integers(0, 4),
    ),
    running_specs=st.lists(spec_st, max_size=25),
    newcomer=spec_st,
)
def test_tail_victims_are_the_strategys(
    capacity: Resources,
    running_specs: list[tuple[int, Resources, bool]],
    newcomer: tuple[int, Resources, bool],
) -> None:
    running: list[RunningDeployment] = []
    allocated = Resources.zero()
    for n, (priority, resources, may_preempt) in enumerate(running_specs):
        at = T0 + timedelta(minutes=n % 4)
        if (allocated + resources).fits_in(capacity):
            running.append(
                RunningDeployment(UUID(int=n + 1), priority, resources, at, at, may_preempt)
            )
            allocated = allocated + resources
    available = capacity - allocated
    priority, need, _ = newcomer
    if need.fits_in(available):
        return
    item = PendingDeployment(UUID(int=1000), priority, need, T0 + timedelta(hours=1), True)
    expected = PRIORITY.select_victims(item, RunningSet(running), available)
    tail = pure_tail(need, available, running, priority)
    assert victims_in_tail(need, available, tail) == expected
    event("evicts" if expected else "no eviction")


@settings(max_examples=800, deadline=None)
@given(
    capacity=st.builds(
        Resources,
        st.integers(2, 12).map(lambda n: n * 500),
        st.integers(2, 8).map(lambda n: n * 1000),
        st.integers(0, 3),
    ),
    running_specs=st.lists(spec_st, max_size=14),
    pending_specs=st.lists(spec_st, max_size=14),
    newcomer=st.tuples(st.integers(0, 7), any_resources_st),
)
def test_a_settled_preemption_is_the_whole_pass(
    capacity: Resources,
    running_specs: list[tuple[int, Resources, bool]],
    pending_specs: list[tuple[int, Resources, bool]],
    newcomer: tuple[int, Resources],
) -> None:
    """From a fixpoint, a newcomer that preempts: when `settles` says so, the full pass does exactly
    its evictions and its start; when the tail finds no victims, the full pass does nothing."""
    world = world_from_specs(capacity, running_specs, pending_specs)
    now = T0 + timedelta(hours=1)
    settle = schedule(capacity, list(world.running.values()), world.pending.values(), PRIORITY, now)
    apply(world, settle, now)  # the cluster at its fixpoint, as every transaction leaves it

    priority, need = newcomer
    available = capacity - world.allocated()
    if need.fits_in(available) or not need.fits_in(capacity):
        return
    item = PendingDeployment(UUID(int=1000), priority, need, now + timedelta(minutes=1), True)
    running = list(world.running.values())
    later = now + timedelta(hours=1)
    full = schedule(capacity, running, [*world.pending.values(), item], PRIORITY, later)

    tail = pure_tail(need, available, running, priority)
    victims = victims_in_tail(need, available, tail)
    if victims is None:
        assert (full.started, full.evicted) == ([], [])
        event("no eviction")
        return
    assert full.evicted[: len(victims)] == [Eviction(v.id, item.id) for v in victims]
    if settles(need, victims):
        assert full.started == [item.id]
        assert full.evicted == [Eviction(v.id, item.id) for v in victims]
        event("settles")
    else:
        event("needs a pass")
