"""Property tests of the scheduling insight: explanations agree with the decisions the scheduler
takes, and estimated starts with what happens when time runs forward and nothing else does."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from app.scheduling import (
    PendingDeployment,
    Resources,
    RunningDeployment,
    RunningSet,
    get_strategy,
    schedule,
)
from app.scheduling.entities import RuntimeLimits
from app.scheduling.explain import (
    FITS,
    INSUFFICIENT_RESOURCES,
    WAITING_FOR_PROTECTION,
    explain,
    protected_in_the_way,
    surroundings,
)
from app.scheduling.forecast import estimate_starts, next_moment
from tests.scheduling.oracle import (
    T0,
    World,
    apply,
    kube_victims,
    limits_st,
    reference,
    resources_st,
    sweep,
)

PRIORITY = get_strategy("priority")

capacity_st = st.builds(
    Resources,
    st.integers(4, 12).map(lambda n: n * 500),
    st.integers(4, 10).map(lambda n: n * 1000),
    st.integers(1, 3),
)
# priority, resources, may preempt, protected for this many minutes (0: not), limits
running_spec_st = st.tuples(
    st.integers(0, 6), resources_st, st.booleans(), st.sampled_from([0, 0, 1, 2, 4]), limits_st
)
pending_spec_st = st.tuples(
    st.integers(0, 6), resources_st, st.sampled_from([True, True, False]), limits_st
)
Running = tuple[int, Resources, bool, int, RuntimeLimits]
# A cluster some of whose running deployments are protected or timed, under either strategy.
given_worlds = given(
    capacity=capacity_st,
    running=st.lists(running_spec_st, min_size=1, max_size=10),
    pending=st.lists(pending_spec_st, min_size=1, max_size=10),
    strategy_name=st.sampled_from(["priority", "priority", "none"]),
)
Pending = tuple[int, Resources, bool, RuntimeLimits]


def world_at_fixpoint(
    capacity: Resources, running: list[Running], pending: list[Pending], strategy_name: str
) -> World:
    """A cluster some of whose running deployments are protected or have deadlines, after the
    pass the service would have run."""
    world = World(capacity)
    for n, (priority, resources, may_preempt, protected, limits) in enumerate(running):
        at = T0 + timedelta(minutes=n % 3)
        run = PendingDeployment(UUID(int=n + 1), priority, resources, at, may_preempt, limits)
        started = run.started(at)
        if protected:
            started = replace(started, protected_until=T0 + timedelta(minutes=protected))
        if (world.allocated() + resources).fits_in(capacity):
            world.running[run.id] = started
    for n, (priority, resources, may_preempt, limits) in enumerate(pending):
        at = T0 + timedelta(minutes=n % 4)
        item = PendingDeployment(UUID(int=100 + n), priority, resources, at, may_preempt, limits)
        world.pending[item.id] = item
    world.clock = T0 + timedelta(seconds=30)
    strategy = get_strategy(strategy_name)
    decision = schedule(capacity, _running(world), _pending(world), strategy, world.clock)
    apply(world, decision, world.clock)
    return world


def _running(world: World) -> list[RunningDeployment]:
    return list(world.running.values())


def _pending(world: World) -> list[PendingDeployment]:
    return list(world.pending.values())


def _starts_alone(world: World, item: PendingDeployment, running: list[RunningDeployment]) -> bool:
    """Would `item`, allowed to preempt and alone in the queue, start under `priority`?"""
    alone = [replace(item, may_preempt=True)]
    return item.id in schedule(world.capacity, running, alone, PRIORITY, world.clock).started


def _unprotected_by(running: list[RunningDeployment], moment: datetime) -> list[RunningDeployment]:
    return [
        replace(r, protected_until=None)
        if r.protected_until is not None and r.protected_until <= moment
        else r
        for r in running
    ]


@settings(max_examples=300, deadline=None)
@given_worlds
def test_the_explanation_agrees_with_the_decision(
    capacity: Resources, running: list[Running], pending: list[Pending], strategy_name: str
) -> None:
    world = world_at_fixpoint(capacity, running, pending, strategy_name)
    strategy = get_strategy(strategy_name)
    now_running = _running(world)
    for item in world.pending.values():
        around = surroundings(item, capacity, RunningSet(now_running))
        why = explain(item, around, strategy)
        assert why.reason != FITS, "the cluster is at its fixpoint"
        # "Evicting every lower priority would make room" is exactly whether a preemptor starts.
        assert why.fits_if_lower_evicted == _starts_alone(world, item, now_running)
        # A preemptor that could get victims would not be pending at the fixpoint.
        assert not why.preemption_can_help
        if why.reason == WAITING_FOR_PROTECTION:
            assert why.protection_ends_at is not None
            just_before = why.protection_ends_at - timedelta(microseconds=1)
            assert not _starts_alone(world, item, _unprotected_by(now_running, just_before))
            assert _starts_alone(world, item, _unprotected_by(now_running, why.protection_ends_at))
            unshielded = [replace(r, protected_until=None) for r in now_running]
            victims = kube_victims(item, unshielded, capacity - world.allocated())
            shielded = {r.id for r in now_running if r.protected_until is not None}
            avoided = protected_in_the_way(item, around.available, now_running)
            assert avoided == sum(v.id in shielded for v in victims) > 0
        elif why.reason == INSUFFICIENT_RESOURCES:
            # "Preemption cannot help" is never wrong, protections or not.
            unshielded = [replace(r, protected_until=None) for r in now_running]
            assert not _starts_alone(world, item, unshielded)


@settings(max_examples=300, deadline=None)
@given_worlds
def test_estimated_starts_are_when_the_world_starts_them(
    capacity: Resources, running: list[Running], pending: list[Pending], strategy_name: str
) -> None:
    world = world_at_fixpoint(capacity, running, pending, strategy_name)
    strategy = get_strategy(strategy_name)
    steps = 40
    estimates = estimate_starts(
        capacity, _running(world), _pending(world), strategy, world.clock, max_steps=steps
    )
    # Time runs forward with nothing else happening, driven by the naive reference pass.
    waiting, started = set(world.pending), dict[UUID, datetime]()
    for _ in range(steps):
        decision, _log = reference(world, strategy.evicts, world.clock)
        apply(world, decision, world.clock)
        started.update((i, world.clock) for i in decision.started if i in waiting - started.keys())
        moment = next_moment(world.running.values())
        if moment is None or not world.pending:
            break
        world.clock = max(world.clock, moment)
        sweep(world)
    assert estimates == started
    for at in estimates.values():
        assert at >= T0 + timedelta(seconds=30), "nothing starts before now"
