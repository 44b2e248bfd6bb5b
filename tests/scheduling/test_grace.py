"""Property tests of graceful preemption: random arrivals, completions and the passing of time on
a cluster with a preemption grace. The full pass and the incremental driver agree; the books
hold while victims are leaving (they keep their resources, and what is reserved for their
preemptors is always free); no leaving or protected deployment is chosen again; and a preemptor
starts when its victims leave, unless a deployment ranked ahead of it took the room first."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from app.scheduling import (
    Decision,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    get_strategy,
    schedule,
    schedule_incremental,
    total,
)
from app.scheduling.entities import requeued
from app.scheduling.forecast import estimate_starts, next_moment
from app.scheduling.ordering import QUEUE
from app.scheduling.reservations import reservations
from tests.scheduling.oracle import World, in_memory_fetch, limits_st, resources_st, sweep

GRACE = timedelta(minutes=2)
PRIORITY = get_strategy("priority")
QUEUE_KEY = QUEUE.sort_key()

capacity_st = st.builds(
    Resources,
    st.integers(2, 8).map(lambda n: n * 500),
    st.integers(2, 6).map(lambda n: n * 1000),
    st.integers(0, 3),
)
event_st = st.one_of(
    st.tuples(
        st.just("create"),
        st.integers(0, 6),
        resources_st,
        st.sampled_from([True, True, False]),
        limits_st,
    ),
    st.tuples(st.just("finish"), st.integers(0, 1000)),
    st.tuples(st.just("wait"), st.integers(0, 3)),
)


def leave(world: World) -> set[UUID]:
    """Victims whose grace is over go back to the queue; the preemptors left with none."""
    waiting_before = {r.preempted_by for r in world.running.values() if r.preempted_by}
    for run in list(world.running.values()):
        if run.evict_at is not None and run.evict_at <= world.clock:
            world.pending[run.id] = requeued(world.running.pop(run.id))
    still = {r.preempted_by for r in world.running.values() if r.preempted_by}
    return {p for p in waiting_before - still if p is not None and p in world.pending}


@settings(max_examples=300, deadline=None)
@given(
    capacity=capacity_st,
    events=st.lists(event_st, min_size=10, max_size=40),
    page_size=st.sampled_from([1, 3, 100]),
)
def test_graceful_preemption_keeps_the_books_and_its_promises(
    capacity: Resources, events: list[tuple[object, ...]], page_size: int
) -> None:
    world = World(capacity)
    for event in events:
        world.clock += timedelta(minutes=1)
        now = world.clock
        due = leave(world)
        sweep(world)
        if event[0] == "create":
            _, priority, resources, may_preempt, limits = event
            assert isinstance(priority, int) and isinstance(resources, Resources)
            world.serial += 1
            item = PendingDeployment(
                UUID(int=world.serial),
                priority,
                resources,
                now,
                bool(may_preempt),
                limits,  # type: ignore[arg-type]
            )
            world.pending[item.id] = item
        elif event[0] == "finish":
            finishable = sorted(r.id for r in world.running.values() if r.evict_at is None)
            if finishable:
                del world.running[finishable[int(event[1]) % len(finishable)]]  # type: ignore[call-overload]
        running = list(world.running.values())
        pending = list(world.pending.values())
        held = reservations(running, pending)
        assert total(held.values()).fits_in(capacity - world.allocated()), "reserved room is used"

        full = schedule(capacity, running, pending, PRIORITY, now, grace=GRACE, reserved=held)
        calls: list[RelevanceFilter] = []
        awaiting = [p for p in pending if p.id in held]
        incremental = schedule_incremental(
            capacity,
            running,
            awaiting,
            in_memory_fetch(world, calls),
            PRIORITY,
            now,
            page_size=page_size,
            grace=GRACE,
            reserved=held,
        )
        assert (incremental.started, incremental.evicted) == (full.started, full.evicted)
        assert sorted(incremental.failed) == sorted(full.failed)

        for eviction in full.evicted:
            victim = world.running[eviction.victim_id]
            assert victim.evict_at is None and victim.protected_until is None
            assert victim.priority < world.pending[eviction.preemptor_id].priority
            world.running[victim.id] = replace(
                victim, evict_at=now + GRACE, preempted_by=eviction.preemptor_id
            )
        for started in full.started:
            world.running[started] = world.pending.pop(started).started(now)
        for failed in full.failed:
            del world.pending[failed]
        assert world.allocated().fits_in(capacity)
        after = reservations(world.running.values(), world.pending.values())
        assert total(after.values()).fits_in(capacity - world.allocated())
        # A preemptor whose victims have all left starts now, unless one ranked ahead took the
        # room: started in it, or reserved it to preempt gracefully in turn.
        took = [*full.started, *(e.preemptor_id for e in full.evicted)]
        for preemptor in due:
            if preemptor in full.started:
                continue
            rank = QUEUE_KEY(world.pending[preemptor])
            ahead = [
                other
                for other in took
                if QUEUE_KEY(world.running.get(other) or world.pending[other]) < rank
            ]
            assert ahead, "a preemptor's victims left and it did not start"


def apply_graceful(world: World, decision: Decision) -> None:
    for eviction in decision.evicted:
        victim = world.running[eviction.victim_id]
        world.running[victim.id] = replace(
            victim, evict_at=world.clock + GRACE, preempted_by=eviction.preemptor_id
        )
    for started in decision.started:
        world.running[started] = world.pending.pop(started).started(world.clock)
    for failed in decision.failed:
        del world.pending[failed]


def graceful_pass(world: World) -> Decision:
    running, pending = list(world.running.values()), list(world.pending.values())
    held = reservations(running, pending)
    return schedule(
        world.capacity, running, pending, PRIORITY, world.clock, grace=GRACE, reserved=held
    )


@settings(max_examples=200, deadline=None)
@given(capacity=capacity_st, events=st.lists(event_st, min_size=5, max_size=25))
def test_estimated_starts_follow_graceful_preemptions(
    capacity: Resources, events: list[tuple[object, ...]]
) -> None:
    world = World(capacity)
    for event in events:
        world.clock += timedelta(minutes=1)
        leave(world)
        sweep(world)
        if event[0] == "create":
            _, priority, resources, may_preempt, limits = event
            world.serial += 1
            world.pending[UUID(int=world.serial)] = PendingDeployment(
                UUID(int=world.serial),
                priority,
                resources,
                world.clock,
                bool(may_preempt),
                limits,  # type: ignore[arg-type]
            )
        apply_graceful(world, graceful_pass(world))
    estimates = estimate_starts(
        capacity,
        list(world.running.values()),
        list(world.pending.values()),
        PRIORITY,
        world.clock,
        grace=GRACE,
        max_steps=40,
    )
    waiting, started = set(world.pending), dict[UUID, datetime]()
    for _ in range(40):
        decision = graceful_pass(world)
        apply_graceful(world, decision)
        started.update((i, world.clock) for i in decision.started if i in waiting - started.keys())
        moment = next_moment(world.running.values())
        if moment is None or not world.pending:
            break
        world.clock = max(world.clock, moment)
        leave(world)
        sweep(world)
    assert estimates == started
