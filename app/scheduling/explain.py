"""Why a pending deployment is not running, from the scheduler's own arithmetic.

Between passes a cluster is at its fixpoint, so a pending deployment whose dependencies are met
neither fits in what is free nor can get victims. Which of the scheduler's conditions failed is
the answer: what is missing, whether evicting every deployment it may evict would make room (the
strategy's own early-out: if not, no choice of victims can), and whether protected deployments
are what stands in the way and until when. Like kube-scheduler's "0/3 nodes are available: 3
Insufficient cpu", but for one pool of capacity, and exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args
from uuid import UUID

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.ordering import REPRIEVE
from app.scheduling.reprieve import deficit, reprieve
from app.scheduling.resources import Resources, total
from app.scheduling.running import RunningSet
from app.scheduling.strategies import Strategy

WAITING_FOR_DEPENDENCIES: Final = "waiting_for_dependencies"
INSUFFICIENT_RESOURCES: Final = "insufficient_resources"
PREEMPTION_NOT_ALLOWED: Final = "preemption_not_allowed"
WAITING_FOR_PROTECTION: Final = "waiting_for_protection"
WAITING_FOR_PREEMPTION: Final = "waiting_for_preemption"
FITS: Final = "fits"
PendingReason = Literal[
    "waiting_for_dependencies",
    "insufficient_resources",
    "preemption_not_allowed",
    "waiting_for_protection",
    "waiting_for_preemption",
    "fits",
]
REASONS: tuple[PendingReason, ...] = get_args(PendingReason)


@dataclass(frozen=True, slots=True)
class PendingExplanation:
    """`missing`: what must be freed for it to fit (its request minus what is free, per
    dimension). `fits_if_lower_evicted`: evicting every evictable deployment of strictly lower
    priority would make room. `preemption_can_help`: that, and it may preempt under the cluster's
    strategy. `protection_ends_at`: with `waiting_for_protection`, when enough protection has
    ended for it to make room. `victims_leave_at`: with `waiting_for_preemption`, when the last of
    the deployments it is preempting gracefully leaves."""

    reason: PendingReason
    missing: Resources
    ahead: int
    ahead_ids: tuple[UUID, ...]
    unmet_dependencies: tuple[UUID, ...]
    fits_if_lower_evicted: bool
    preemption_can_help: bool
    protection_ends_at: datetime | None
    victims_leave_at: datetime | None = None

    @property
    def message(self) -> str:
        return _sentence(self)


@dataclass(frozen=True, slots=True)
class Surroundings:
    """A cluster as one pending deployment of priority p sees it: all that `explain` reads.

    `available`: free for it (less what is reserved for other preemptors). `evictable_below`: held
    by running deployments of priority < p that are neither protected nor leaving.
    `protected_below`: the protected ones of priority < p. `victims_leave_at`: when it is waiting
    for its own graceful victims, the last one's `evict_at`."""

    available: Resources
    evictable_below: Resources
    protected_below: tuple[RunningDeployment, ...] = ()
    victims_leave_at: datetime | None = None


def surroundings(
    target: PendingDeployment,
    capacity: Resources,
    running: RunningSet,
    reserved: Mapping[UUID, Resources] | None = None,
) -> Surroundings:
    """`Surroundings` read off a whole running set; `reserved` as `reservations.reservations`."""
    held = dict(reserved or {})
    mine = held.pop(target.id, None)
    leaving = (
        []
        if mine is None  # only a preemptor holding a reservation has victims leaving
        else [run.evict_at for run in running if run.preempted_by == target.id and run.evict_at]
    )
    return Surroundings(
        capacity - running.total - total(held.values()),
        running.lower_total(target.priority),
        tuple(running.protected_below(target.priority)),
        max(leaving) if mine is not None and leaving else None,
    )


def explain(
    target: PendingDeployment,
    around: Surroundings,
    strategy: Strategy,
    *,
    ahead: int = 0,
    ahead_ids: Sequence[UUID] = (),
    unmet_dependencies: Sequence[UUID] = (),
) -> PendingExplanation:
    """Why `target` waits, in `around`, under `strategy`."""
    need = target.resources
    available = around.available
    evictable = available + around.evictable_below
    fits_if_lower_evicted = need.fits_in(evictable)
    allowed = target.may_preempt and strategy.evicts
    protected = around.protected_below
    fits_if_unprotected = need.fits_in(evictable + total(run.resources for run in protected))
    protection_ends_at = None
    if allowed and fits_if_unprotected and not fits_if_lower_evicted:
        protection_ends_at = _room_once_unprotected(need, evictable, protected)
    reason: PendingReason
    if unmet_dependencies:
        reason = WAITING_FOR_DEPENDENCIES
    elif need.fits_in(available):
        reason = FITS
    elif around.victims_leave_at is not None:
        reason = WAITING_FOR_PREEMPTION
    elif protection_ends_at is not None:
        reason = WAITING_FOR_PROTECTION
    elif fits_if_unprotected and not allowed:
        reason = PREEMPTION_NOT_ALLOWED
    else:
        reason = INSUFFICIENT_RESOURCES
    return PendingExplanation(
        reason=reason,
        missing=deficit(need, available),
        ahead=ahead,
        ahead_ids=tuple(ahead_ids),
        unmet_dependencies=tuple(unmet_dependencies),
        fits_if_lower_evicted=fits_if_lower_evicted,
        preemption_can_help=fits_if_lower_evicted and allowed,
        protection_ends_at=protection_ends_at,
        victims_leave_at=around.victims_leave_at if reason == WAITING_FOR_PREEMPTION else None,
    )


def _room_once_unprotected(
    need: Resources, evictable: Resources, protected: Sequence[RunningDeployment]
) -> datetime | None:
    """The earliest end of protection after which evicting every lower priority makes room."""
    room = evictable
    for run in sorted(protected, key=_protection_end):
        room = room + run.resources
        if need.fits_in(room):
            return run.protected_until
    return None


def _protection_end(run: RunningDeployment) -> datetime:
    assert run.protected_until is not None
    return run.protected_until


def protected_in_the_way(
    target: PendingDeployment, available: Resources, running: Iterable[RunningDeployment]
) -> int:
    """How many protected deployments the `priority` strategy's reprieve would evict for
    `target` if nothing were protected: the evictions protection avoids. `available` as in
    `Surroundings`; `running` holds at least every running deployment below its priority."""
    candidates = [run for run in running if run.priority < target.priority and run.evict_at is None]
    free = available + total(run.resources for run in candidates)
    in_order = sorted(candidates, key=REPRIEVE.sort_key())
    victims = reprieve(target.resources, free, in_order) or []
    return sum(victim.protected_until is not None for victim in victims)


def _amount(resources: Resources) -> str:
    parts = []
    if resources.cpu_millis:
        parts.append(f"{resources.cpu_millis / 1000:g} CPU")
    if resources.ram_millis:
        parts.append(f"{resources.ram_millis / 1000:g} GiB of RAM")
    if resources.gpu:
        parts.append(f"{resources.gpu} GPU")
    return " and ".join(parts) or "nothing"


def _when(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sentence(why: PendingExplanation) -> str:
    counted = f"{why.ahead} deployment{'s are' if why.ahead != 1 else ' is'}"
    ahead = f"{'nothing is' if why.ahead == 0 else counted} ahead of it in the queue"
    if why.reason == WAITING_FOR_DEPENDENCIES:
        count = len(why.unmet_dependencies)
        return f"Waiting for {count} dependenc{'ies' if count != 1 else 'y'} to complete."
    if why.reason == FITS:
        return f"It fits in what is free and starts at the cluster's next pass; {ahead}."
    needs = f"Needs {_amount(why.missing)} more than is free; {ahead}; "
    if why.reason == WAITING_FOR_PREEMPTION:
        assert why.victims_leave_at is not None
        return needs + (
            "it is preempting lower-priority deployments gracefully and starts when they have "
            f"left, at {_when(why.victims_leave_at)}."
        )
    if why.reason == WAITING_FOR_PROTECTION:
        assert why.protection_ends_at is not None
        return needs + (
            "the lower-priority deployments it could evict are protected by their minimum "
            f"runtime: it can preempt once that protection ends at {_when(why.protection_ends_at)}."
        )
    if why.reason == PREEMPTION_NOT_ALLOWED:
        return needs + (
            "evicting lower-priority deployments would make room, but its preemption policy "
            "or the cluster's strategy does not allow it to evict: it waits for room."
        )
    return needs + (
        "evicting every lower-priority deployment would not make room, so preemption cannot "
        "help: it waits for running deployments to end or for more capacity."
    )
