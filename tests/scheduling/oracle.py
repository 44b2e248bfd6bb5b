"""Test oracles for the scheduler: a world to apply decisions to, a naive reference pass written
from the contract's words, and the invariants every pass must keep."""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import strategies as st

from app.scheduling import (
    Decision,
    Eviction,
    Fetch,
    PendingDeployment,
    RelevanceFilter,
    Resources,
    RunningDeployment,
    RunningSet,
    Strategy,
    relevance_filter,
    total,
)
from app.scheduling.entities import NO_LIMITS, RuntimeLimits, requeued
from app.scheduling.ordering import QUEUE

T0 = datetime(2026, 11, 29, tzinfo=UTC)

# -- the world -------------------------------------------------------------------------------

# The queue order as the contract declares it (generic and slow: the oracle wants plain).
QUEUE_KEY = QUEUE.sort_key()


@dataclass
class World:
    capacity: Resources
    running: dict[UUID, RunningDeployment] = field(default_factory=dict)
    pending: dict[UUID, PendingDeployment] = field(default_factory=dict)
    clock: datetime = T0
    serial: int = 0

    def allocated(self) -> Resources:
        return total(r.resources for r in self.running.values())


Spec = tuple[int, Resources, bool]  # priority, resources, may preempt

# Requests of mixed shapes, never all zero.
resources_st = st.builds(
    Resources,
    st.sampled_from([0, 250, 500, 1000, 1500, 2000, 3000]),
    st.sampled_from([0, 512, 1000, 2000, 4000]),
    st.sampled_from([0, 0, 0, 1, 2]),
).filter(lambda r: not r.is_zero())


# Most deployments without limits; some protected for a minute or three, some stopped after a few.
limits_st = st.one_of(
    st.just(NO_LIMITS),
    st.builds(
        RuntimeLimits,
        st.sampled_from([None, timedelta(minutes=1), timedelta(minutes=3)]),
        st.sampled_from([None, timedelta(minutes=2), timedelta(minutes=5)]),
    ),
)


def sweep(world: World) -> bool:
    """What the service's sweeper does at `world.clock`: runs past their `stops_at` complete,
    lapsed protections are cleared. Whether anything changed (the cluster may no longer be at its
    fixpoint)."""
    changed = False
    for run in list(world.running.values()):
        if run.stops_at is not None and run.stops_at <= world.clock:
            del world.running[run.id]
            changed = True
        elif run.protected_until is not None and run.protected_until <= world.clock:
            world.running[run.id] = replace(run, protected_until=None)
            changed = True
    return changed


def world_from_specs(capacity: Resources, running: list[Spec], pending: list[Spec]) -> World:
    """Running deployments that fit, started at one of 3 minutes, and pending ones created at one
    of 4: ties on time are common, so the id's place in the orders is exercised."""
    world = World(capacity)
    for n, (priority, resources, may_preempt) in enumerate(running):
        at = T0 + timedelta(minutes=n % 3)
        run = RunningDeployment(UUID(int=n + 1), priority, resources, at, at, may_preempt)
        if (world.allocated() + resources).fits_in(capacity):
            world.running[run.id] = run
    for n, (priority, resources, may_preempt) in enumerate(pending):
        at = T0 + timedelta(minutes=n % 4)
        item = PendingDeployment(UUID(int=100 + n), priority, resources, at, may_preempt)
        world.pending[item.id] = item
    return world


def apply(world: World, decision: Decision, now: datetime) -> None:
    """What the service does with a decision: evictions, then starts, then failures."""
    for eviction in decision.evicted:
        victim = world.running.pop(eviction.victim_id)
        world.pending[victim.id] = requeued(victim)
    for started in decision.started:
        world.running[started] = world.pending.pop(started).started(now)
    for failed in decision.failed:
        del world.pending[failed]


# -- a naive reference, written from the contract's words --------------------------------------

Preemption = tuple[PendingDeployment, Resources, list[RunningDeployment]]


def kube_victims(
    newcomer: PendingDeployment, running: Iterable[RunningDeployment], available: Resources
) -> list[RunningDeployment]:
    candidates = sorted(
        (r for r in running if r.priority < newcomer.priority and r.protected_until is None),
        key=lambda r: (-r.priority, r.started_at, r.id),
    )
    free = available + total(c.resources for c in candidates)
    if not newcomer.resources.fits_in(free):
        return []
    victims = []
    for candidate in candidates:
        if newcomer.resources.fits_in(free - candidate.resources):
            free = free - candidate.resources
        else:
            victims.append(candidate)
    return victims[::-1]


def reference(world: World, evicts: bool, now: datetime) -> tuple[Decision, list[Preemption]]:
    running, pending = dict(world.running), dict(world.pending)
    decision, log = Decision(), []
    for item in sorted(pending.values(), key=QUEUE_KEY):
        if not item.resources.fits_in(world.capacity):
            decision.failed.append(item.id)
            del pending[item.id]
    acted = True
    while acted:
        acted = False
        available = world.capacity - total(r.resources for r in running.values())
        for item in sorted(pending.values(), key=QUEUE_KEY):
            victims: list[RunningDeployment] = []
            if not item.resources.fits_in(available):
                if not (evicts and item.may_preempt):
                    continue
                victims = kube_victims(item, running.values(), available)
                if not victims:
                    continue
                log.append((item, available, victims))
            for victim in victims:
                pending[victim.id] = requeued(running.pop(victim.id))
                decision.evicted.append(Eviction(victim.id, item.id))
            running[item.id] = pending.pop(item.id).started(now)
            decision.started.append(item.id)
            acted = True
            break
    return decision, log


def in_memory_fetch(world: World, calls: list[RelevanceFilter]) -> Fetch:
    def fetch(flt: RelevanceFilter, seen: Set[UUID]) -> list[PendingDeployment]:
        calls.append(flt)
        ordered = sorted(world.pending.values(), key=QUEUE_KEY)
        return [p for p in ordered if p.id not in seen and flt.matches(p)][: flt.limit]

    return fetch


# -- the invariants --------------------------------------------------------------------------


def assert_fixpoint(world: World, strategy: Strategy) -> None:
    running = RunningSet(world.running.values())
    available = world.capacity - running.total
    for item in world.pending.values():
        assert item.resources.fits_in(world.capacity), "oversized deployment left pending"
        assert not item.resources.fits_in(available), "a pending deployment fits"
        if item.may_preempt:
            assert strategy.select_victims(item, running, available) is None, "could preempt"


def assert_preemptions(log: list[Preemption]) -> None:
    for newcomer, available, victims in log:
        freed = available + total(v.resources for v in victims)
        assert newcomer.resources.fits_in(freed)
        for victim in victims:
            assert victim.priority < newcomer.priority
            # The reprieve rule leaves no victim that could have been spared on its own.
            assert not newcomer.resources.fits_in(freed - victim.resources)


def assert_filter_is_superset(world: World, strategy: Strategy, max_bands: int) -> None:
    flt = relevance_filter(
        world.capacity, world.running.values(), preemption=strategy.evicts, max_bands=max_bands
    )
    running = RunningSet(world.running.values())
    available = world.capacity - running.total
    for item in world.pending.values():
        res = item.resources
        can_act = (
            res.fits_in(available)
            or not res.fits_in(world.capacity)
            or (item.may_preempt and strategy.select_victims(item, running, available) is not None)
        )
        if can_act:
            assert flt.matches(item)
