"""One scheduling pass over one cluster: a pure function of its inputs.

Semantics: repeatedly, the first pending deployment in scheduling order (-priority, created_at, id)
that can act does: it starts if it fits in `available`; otherwise, if it may preempt, the strategy
may name victims, which go back to the queue at their original place, and it starts. A deployment
that can do neither is skipped and blocks nobody (backfill). The pass ends at a fixpoint: nothing
pending fits and no pending preemptor can get victims.

Implementation: one sorted array of queue positions (pending deployments plus the running ones,
which come back to their position if evicted) and a cursor that walks it once. Two facts keep this
a single walk instead of a loop to a fixpoint:
* A start never makes anyone actionable: it only lowers `available`, and it never raises
  `capacity - (running at priority >= p)`, the most a preemptor of priority p could free.
* After an eviction by the deployment at the cursor, positions behind the cursor (which all rank
  at or above it) can only have become able to fit, not to preempt; victims rank below the cursor
  and are met by the walk. So after each eviction, `FitIndex` starts whatever now fits behind it.

Graceful preemption (`grace`): victims are not removed but marked leaving (`evict_at`): they keep
their resources and are nobody's candidates from then on. The preemptor does not start: it waits
for them, and the room it needs beyond what they will free is **reserved** for it out of
`available`, so nobody else can take it meanwhile. A preemptor with a reservation (`reserved`, from
earlier passes) never preempts again; it starts when it fits in `available` plus its reservation,
which at the latest is when its victims leave. A grace preemption frees nothing, so no rescan and no
fetch follow it.

Termination: each action adds one deployment to the running set and removes only deployments of
strictly lower priority, so the running priorities, sorted in decreasing order, grow
lexicographically with every action; over a finite set of deployments that cannot go on forever.
(A graceful preemption removes nobody: it takes its victims out of every later choice and gives
its preemptor a reservation, after which that preemptor never preempts again.)
It also follows that preemptors act in non-increasing priority order, so a deployment started in a
pass is never evicted later in the same pass.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from app.scheduling.entities import (
    Decision,
    Eviction,
    PendingDeployment,
    RunningDeployment,
    requeued,
)
from app.scheduling.fitindex import FitIndex
from app.scheduling.relevance import RelevanceFilter, relevance_filter
from app.scheduling.reprieve import deficit
from app.scheduling.resources import Resources, total
from app.scheduling.running import RunningSet
from app.scheduling.strategies import Strategy

# fetch(filter, ids already handed to the pass) -> the first `filter.limit` matching pending
# deployments that are not in that set, in scheduling order.
Fetch = Callable[[RelevanceFilter, Set[UUID]], list[PendingDeployment]]

_PENDING, _RUNNING = 0, 1

# The scheduling order (-priority, created_at, id) with the id as its int: same order, but the
# tuples hold only atoms (cheaper to compare, and the garbage collector stops tracking them).
_Key = tuple[int, datetime, int]


def _key(item: PendingDeployment) -> _Key:
    return (-item.priority, item.created_at, item.id.int)


class SchedulingPass:
    """The state of one pass. `schedule` and `schedule_incremental` are the ways to run it."""

    def __init__(
        self,
        capacity: Resources,
        running: Sequence[RunningDeployment],
        strategy: Strategy,
        now: datetime,
        *,
        fetch: Fetch | None = None,
        page_size: int = 100,
        max_bands: int = 8,
        grace: timedelta | None = None,
        reserved: Mapping[UUID, Resources] | None = None,
    ) -> None:
        self.capacity = capacity
        self.strategy = strategy
        self.now = now
        self.grace = grace
        self.reserved = dict(reserved or {})
        self.running = RunningSet(running)
        if not self.running.total.fits_in(capacity):
            raise ValueError("running deployments exceed the cluster's capacity")
        self.available = capacity - self.running.total - total(self.reserved.values())
        self.decision = Decision()
        self.fetch_calls = 0
        self._fetch = fetch
        self._page_size = page_size
        self._max_bands = max_bands
        self._keys: list[_Key] = []
        self._items: list[PendingDeployment] = []
        self._state = bytearray()
        self._position: dict[int, int] = {}  # UUID.int -> index; -1: failed
        self._fetched: set[UUID] = set()
        self._cursor = -1  # the last position the walk acted on or skipped
        self._horizon: _Key | None = None  # the walk must not pass it before fetching more
        self._rescan = False  # an eviction happened: look behind the cursor for what now fits
        self._fits: FitIndex | None = None  # built on the first rescan, kept in step after
        # Where evicted deployments go back in the queue. A full pass, whose queue may hold a whole
        # backlog, places every running one up front (as running): an eviction then only flips
        # its state, and positions and the FitIndex stay put. An incremental pass queues only
        # fetched pages, re-sorted at every fetch anyway, and most running deployments are never
        # touched: there a victim is merged in when evicted, and nothing is built for the others.
        self._lazy_running = fetch is not None
        if not self._lazy_running:
            self._insert([requeued(r) for r in running], _RUNNING)

    def add(self, pending: Iterable[PendingDeployment]) -> None:
        """Hand pending deployments to the pass; those larger than the cluster fail at once."""
        position, failed = self._position, self.decision.failed
        cap, running, lazy = self.capacity, self.running, self._lazy_running
        track = self._fetch is not None
        fresh: list[PendingDeployment] = []
        for item in pending:
            key = item.id.int  # int keys: UUID hashing is Python code, int hashing is not
            if key in position or (lazy and item.id in running):
                raise ValueError(f"deployment {item.id} given to the pass twice")
            position[key] = -1
            if track:
                self._fetched.add(item.id)
            res = item.resources
            if (
                res.cpu_millis <= cap.cpu_millis
                and res.ram_millis <= cap.ram_millis
                and res.gpu <= cap.gpu
            ):
                fresh.append(item)
            else:
                failed.append(item.id)
                held = self.reserved.pop(item.id, None)
                if held is not None:  # it will never start: what was held for it is free again
                    self.available = self.available + held
        self._insert(fresh, _PENDING)

    def run(self) -> Decision:
        """Walk to the fixpoint (fetching more first, when driven incrementally)."""
        while True:
            if self._rescan:
                hi = self._cursor + 1
                if self._horizon is not None:
                    hi = min(hi, bisect_right(self._keys, self._horizon))
                found = self._fit_index().first_fit(self.available, hi)
                if found is not None:
                    self._start(found)
                    continue
                if hi < self._cursor + 1:
                    self.refill()  # what fits may lie past the last fetched page
                    continue
                self._rescan = False
            position = self._next_pending()
            if position is None or (
                self._horizon is not None and self._keys[position] > self._horizon
            ):
                if self._horizon is None:
                    return self.decision
                self.refill()
                continue
            self._cursor = position
            if self._visit(position) and self._fetch is not None:
                # Evictions may have made unfetched deployments actionable: fetch before acting.
                self.refill()

    def refill(self) -> None:
        """Fetch what could now act (the relevance filter on the current state)."""
        if self._fetch is None:
            raise RuntimeError("refill needs a fetch function")
        flt = relevance_filter(
            self.capacity,
            self.running,
            preemption=self.strategy.evicts,
            limit=self._page_size,
            max_bands=self._max_bands,
        )
        self.fetch_calls += 1
        page = self._fetch(flt, self._fetched)
        self._horizon = _key(page[-1]) if len(page) >= self._page_size else None
        self.add(page)

    # -- actions -------------------------------------------------------------------------------

    def _visit(self, position: int) -> bool:
        """Act on the deployment at the cursor; True when it evicted someone."""
        item = self._items[position]
        held = self.reserved.get(item.id)
        if held is not None:  # waiting for its victims to leave: it never preempts again
            if item.resources.fits_in(self.available + held):
                self._start(position)
            return False
        if item.resources.fits_in(self.available):
            self._start(position)
            return False
        if not (item.may_preempt and self.strategy.evicts):
            return False
        victims = self.strategy.select_victims(item, self.running, self.available)
        if not victims:
            return False
        if self.grace is not None:
            self._preempt_gracefully(item, victims, self.grace)
            return False
        requeue: list[PendingDeployment] = []
        for victim in victims:
            if victim.priority >= item.priority:
                raise ValueError(f"strategy {self.strategy.name!r} chose a victim of equal rank")
            self.running.remove(victim.id)
            self.available = self.available + victim.resources
            known = self._position.get(victim.id.int)
            if known is None:  # running since before the pass, in an incremental pass
                requeue.append(requeued(victim))
            else:
                self._set_state(known, _PENDING)
            self.decision.evicted.append(Eviction(victim.id, item.id))
        if not item.resources.fits_in(self.available):
            raise ValueError(f"strategy {self.strategy.name!r} chose too few victims")
        # Victims rank below the preemptor: they land after the cursor, which stays on it.
        self._insert(requeue, _PENDING)
        self._start(self._cursor)
        self._rescan = True
        return True

    def _preempt_gracefully(
        self, item: PendingDeployment, victims: list[RunningDeployment], grace: timedelta
    ) -> None:
        """Mark the victims leaving at `now + grace` and reserve what else `item` needs."""
        freed = total(victim.resources for victim in victims)
        for victim in victims:
            if victim.priority >= item.priority:
                raise ValueError(f"strategy {self.strategy.name!r} chose a victim of equal rank")
            self.running.remove(victim.id)
            self.running.add(replace(victim, evict_at=self.now + grace, preempted_by=item.id))
            self.decision.evicted.append(Eviction(victim.id, item.id))
        held = deficit(item.resources, freed)
        if not held.fits_in(self.available):
            raise ValueError(f"strategy {self.strategy.name!r} chose too few victims")
        self.reserved[item.id] = held
        self.available = self.available - held
        if self._fits is not None:
            self._fits.set(self._cursor, self._from_available(item))

    def _start(self, position: int) -> None:
        item = self._items[position]
        held = self.reserved.pop(item.id, None)
        if held is not None:
            self.available = self.available + held
        self.running.add(item.started(self.now))
        self.available = self.available - item.resources
        self._set_state(position, _RUNNING)
        self.decision.started.append(item.id)

    # -- queue bookkeeping ---------------------------------------------------------------------

    def _next_pending(self) -> int | None:
        state, position, end = self._state, self._cursor + 1, len(self._state)
        while position < end and state[position] != _PENDING:
            position += 1
        return position if position < end else None

    def _set_state(self, position: int, state: int) -> None:
        self._state[position] = state
        if self._fits is not None:
            item = self._items[position]
            self._fits.set(position, self._from_available(item) if state == _PENDING else None)

    def _from_available(self, item: PendingDeployment) -> Resources:
        """What `item` needs out of `available`: less what is reserved for it."""
        held = self.reserved.get(item.id)
        return item.resources if held is None else item.resources - held

    def _fit_index(self) -> FitIndex:
        if self._fits is None:
            self._fits = FitIndex(
                [
                    self._from_available(item) if state == _PENDING else None
                    for item, state in zip(self._items, self._state, strict=True)
                ]
            )
        return self._fits

    def _insert(self, items: list[PendingDeployment], state: int) -> None:
        """Merge items into the sorted queue; the cursor keeps pointing at the same deployment.

        New items behind the cursor count as skipped: the driver only fetches mid-pass after an
        eviction (then the rescan looks at them) or when the walk reached the last fetched page,
        when nothing behind the cursor can act (a start never makes anyone actionable).
        """
        if not items:
            return
        cursor_key = self._keys[self._cursor] if self._cursor >= 0 else None
        keys = self._keys + [(-item.priority, item.created_at, item.id.int) for item in items]
        every = self._items + items
        states = self._state + bytes([state]) * len(items)
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._keys = [keys[i] for i in order]
        self._items = [every[i] for i in order]
        self._state = bytearray(map(states.__getitem__, order))
        self._position.update({item.id.int: i for i, item in enumerate(self._items)})
        if cursor_key is not None:
            self._cursor = bisect_left(self._keys, cursor_key)
        self._fits = None  # positions moved; rebuilt on the next rescan


def schedule(
    capacity: Resources,
    running: Sequence[RunningDeployment],
    pending: Iterable[PendingDeployment],
    strategy: Strategy,
    now: datetime,
    *,
    grace: timedelta | None = None,
    reserved: Mapping[UUID, Resources] | None = None,
) -> Decision:
    """A full pass over the given pending deployments (dependencies already met). With `grace`,
    evictions are graceful; `reserved`: the reservations of preemptors waiting for victims."""
    scheduling_pass = SchedulingPass(
        capacity, running, strategy, now, grace=grace, reserved=reserved
    )
    scheduling_pass.add(pending)
    return scheduling_pass.run()
