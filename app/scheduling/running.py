"""The running deployments of one cluster, indexed for the two questions preemption asks.

1. "Would evicting every deployment of strictly lower priority make room?" is asked for each
   pending deployment that does not fit and may preempt. A backlog of thousands of them would cost
   O(backlog * running) with a scan, so totals per priority level live in a Fenwick tree and the
   answer is a prefix sum: O(log levels).
2. "Which candidates, in reprieve order?" is asked only when the answer to 1 is yes, i.e. when
   an eviction will happen; a list sorted by (-priority, started_at, id) answers it with a bisect.

A protected deployment (`protected_until` set), or one already leaving (`evict_at` set), is never
a candidate: it is filed under a level above every priority, so both answers leave it out while the
totals still count what it holds.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from operator import itemgetter
from uuid import UUID

from app.scheduling.entities import RunningDeployment
from app.scheduling.resources import Resources

_Slot = tuple[int, datetime, UUID, RunningDeployment]

# The level of protected deployments: above any priority, so never "strictly lower" than anyone.
PROTECTED_LEVEL = 1 << 40


def eviction_level(run: RunningDeployment) -> int:
    """The priority a preemptor must exceed to evict `run`."""
    if run.protected_until is None and run.evict_at is None:
        return run.priority
    return PROTECTED_LEVEL


class RunningSet:
    """Running deployments with per-priority totals; mutated by the scheduler as a pass goes."""

    def __init__(
        self, running: Iterable[RunningDeployment], priorities: Iterable[int] = ()
    ) -> None:
        self._by_id: dict[UUID, RunningDeployment] = {}
        self._protected: dict[UUID, RunningDeployment] = {}
        # Reprieve order: highest priority first, then earliest started, then id. Ids are unique,
        # so tuple comparison never reaches the dataclass in the last slot.
        self._order: list[_Slot] = []
        self._cpu = self._ram = self._gpu = 0
        # level -> [cpu, ram, gpu, count]; the Fenwick tree below is rebuilt from it when a new
        # level appears (rare: the pass registers the pending priorities up front).
        self._levels: dict[int, list[int]] = {}
        self._sorted_levels: list[int] = []
        self._tree: list[list[int]] = [[], [], []]
        for run in running:
            if run.id in self._by_id:
                raise ValueError(f"duplicate running deployment {run.id}")
            self._by_id[run.id] = run
            if run.protected_until is not None:
                self._protected[run.id] = run
            self._order.append(_slot(run))
            self._account(run, 1)
        self._order.sort()
        self._rebuild(set(self._levels) | set(priorities))

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[RunningDeployment]:
        return iter(self._by_id.values())

    def __contains__(self, deployment_id: object) -> bool:
        return deployment_id in self._by_id

    @property
    def total(self) -> Resources:
        return Resources(self._cpu, self._ram, self._gpu)

    def lower_total(self, priority: int) -> Resources:
        """Sum of the resources of evictable running deployments with priority strictly below
        `priority`."""
        index = bisect_left(self._sorted_levels, priority)
        cpu_tree, ram_tree, gpu_tree = self._tree
        cpu = ram = gpu = 0
        while index > 0:
            cpu += cpu_tree[index]
            ram += ram_tree[index]
            gpu += gpu_tree[index]
            index -= index & -index
        return Resources(cpu, ram, gpu)

    def lower_in_reprieve_order(self, priority: int) -> Iterator[RunningDeployment]:
        """Evictable running deployments with priority < `priority`: highest first, earliest
        started first.

        Lazy (no copy of the candidates): consume it before changing the set.
        """
        # -p < -priority + 1 <=> p > priority - 1 <=> p >= priority: those come before the cut.
        start = bisect_left(self._order, (-priority + 1,))
        return map(_deployment, islice(self._order, start, None))

    def priority_totals(self) -> list[tuple[int, Resources]]:
        """(priority, total resources) for each priority held by an evictable running deployment,
        ascending."""
        return [
            (level, Resources(t[0], t[1], t[2]))
            for level in self._sorted_levels
            if (t := self._levels[level])[3] > 0 and level != PROTECTED_LEVEL
        ]

    def protected_below(self, priority: int) -> list[RunningDeployment]:
        """Protected deployments of priority strictly below `priority`: those it could evict but
        for their protection."""
        return [run for run in self._protected.values() if run.priority < priority]

    # -- changing ------------------------------------------------------------------------------

    def add(self, run: RunningDeployment) -> None:
        if run.id in self._by_id:
            raise ValueError(f"{run.id} is already running")
        self._by_id[run.id] = run
        if run.protected_until is not None:
            self._protected[run.id] = run
        insort(self._order, _slot(run))
        level = eviction_level(run)
        if level not in self._levels:
            self._rebuild(set(self._levels) | {level})
        self._account(run, 1)
        self._fenwick_add(level, run.resources, 1)

    def remove(self, deployment_id: UUID) -> RunningDeployment:
        run = self._by_id.pop(deployment_id)
        self._protected.pop(deployment_id, None)
        slot = _slot(run)
        del self._order[bisect_left(self._order, slot)]
        self._account(run, -1)
        self._fenwick_add(eviction_level(run), run.resources, -1)
        return run

    # -- internals -----------------------------------------------------------------------------

    def _account(self, run: RunningDeployment, sign: int) -> None:
        res = run.resources
        self._cpu += sign * res.cpu_millis
        self._ram += sign * res.ram_millis
        self._gpu += sign * res.gpu
        level = self._levels.setdefault(eviction_level(run), [0, 0, 0, 0])
        level[0] += sign * res.cpu_millis
        level[1] += sign * res.ram_millis
        level[2] += sign * res.gpu
        level[3] += sign

    def _fenwick_add(self, priority: int, res: Resources, sign: int) -> None:
        index = bisect_left(self._sorted_levels, priority) + 1
        cpu_tree, ram_tree, gpu_tree = self._tree
        size = len(cpu_tree)
        while index < size:
            cpu_tree[index] += sign * res.cpu_millis
            ram_tree[index] += sign * res.ram_millis
            gpu_tree[index] += sign * res.gpu
            index += index & -index

    def _rebuild(self, levels: set[int]) -> None:
        for level in levels:
            self._levels.setdefault(level, [0, 0, 0, 0])
        self._sorted_levels = sorted(self._levels)
        size = len(self._sorted_levels) + 1
        trees = [[0] * size for _ in range(3)]
        # Linear-time Fenwick construction: each node pushes its partial sum to its parent.
        for position, level in enumerate(self._sorted_levels, start=1):
            totals = self._levels[level]
            for dim in range(3):
                trees[dim][position] += totals[dim]
        for position in range(1, size):
            parent = position + (position & -position)
            if parent < size:
                for dim in range(3):
                    trees[dim][parent] += trees[dim][position]
        self._tree = trees


_deployment = itemgetter(3)


def _slot(run: RunningDeployment) -> _Slot:
    return (-eviction_level(run), run.started_at, run.id, run)
