"""The `priority` strategy's victims for one newcomer, from the lowest candidates only.

kube-scheduler's rule (see `strategies/priority.py`) reprieves candidates c1, c2, ... cn in reprieve
order (highest priority first, earliest started first, then id), keeping each reprieve that still
leaves room. With T(k) = the resources of the candidates after ck, and c1 .. c(k-1) all reprieved,
ck is reprieved exactly when `available + T(k)` covers `need` in every dimension. T only shrinks as
k grows, so the candidates reprieved for that reason form a prefix c1 .. c(K-1), and the greedy from
cK on runs as if they had never been candidates. So the service loads only the tail cK .. cn: in
*reverse* reprieve order (lowest first), the candidates up to, not including, the first one whose
predecessors in that order already cover `need - available` (`tail_length`). A running set of
thousands costs a page of a few rows instead of all of them.

After the newcomer evicts, a pass would go on with whatever its evictions made actionable. From a
fixpoint (nothing pending could act before the newcomer came) `settles` proves, from the victims
alone, that nothing can: then the newcomer's eviction and start is the whole pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.scheduling.entities import RunningDeployment
from app.scheduling.resources import Resources, total


def deficit(need: Resources, available: Resources) -> Resources:
    """What evictions must free: `need - available`, never below zero in a dimension."""
    return Resources(
        max(0, need.cpu_millis - available.cpu_millis),
        max(0, need.ram_millis - available.ram_millis),
        max(0, need.gpu - available.gpu),
    )


def tail_length(missing: Resources, lowest_first: Sequence[RunningDeployment]) -> int | None:
    """How many of `lowest_first` (candidates in reverse reprieve order, from the first) belong to
    the tail: the index of the first one whose predecessors cover `missing`. None when none does:
    then all of them belong to the tail, and so may candidates after them."""
    cpu = ram = gpu = 0
    for index, candidate in enumerate(lowest_first):
        if cpu >= missing.cpu_millis and ram >= missing.ram_millis and gpu >= missing.gpu:
            return index
        res = candidate.resources
        cpu += res.cpu_millis
        ram += res.ram_millis
        gpu += res.gpu
    return None


def victims_in_tail(
    need: Resources, available: Resources, tail: Sequence[RunningDeployment]
) -> list[RunningDeployment] | None:
    """The victims `PriorityPreemption.select_victims` would choose among all the candidates, given
    only their tail (lowest first; all of them when the tail is every candidate), lowest priority
    first; None when evicting every candidate would not make room."""
    free = available + total(c.resources for c in tail)
    if not need.fits_in(free):
        return None
    return reprieve(need, free, reversed(tail))


def reprieve(
    need: Resources, free: Resources, in_reprieve_order: Iterable[RunningDeployment]
) -> list[RunningDeployment] | None:
    """kube-scheduler's reprieve: `free` is the room with every candidate evicted (it must fit
    `need`); keep each candidate, in reprieve order, whose return still leaves room. The rest are
    the victims, lowest priority first (the order evictions are recorded in); None if none."""
    # Plain ints in the loop: it runs once per candidate when an eviction does happen.
    slack_cpu = free.cpu_millis - need.cpu_millis
    slack_ram = free.ram_millis - need.ram_millis
    slack_gpu = free.gpu - need.gpu
    victims: list[RunningDeployment] = []
    for candidate in in_reprieve_order:
        res = candidate.resources
        if res.cpu_millis <= slack_cpu and res.ram_millis <= slack_ram and res.gpu <= slack_gpu:
            slack_cpu -= res.cpu_millis
            slack_ram -= res.ram_millis
            slack_gpu -= res.gpu
        else:
            victims.append(candidate)
    victims.reverse()
    return victims or None


def settles(need: Resources, victims: Sequence[RunningDeployment]) -> bool:
    """True when, on a cluster at its fixpoint under the `priority` strategy, nothing pending can
    act once a newcomer needing `need` has evicted `victims` and started: when the victims free no
    more than it takes, in every dimension.

    Then `available` does not grow in any dimension; and for a pending deployment of priority r,
    the most it could free, `available + (running below r)`, does not grow either (for r above the
    newcomer it is unchanged; for r at most its priority it changes by the victims at r or above,
    minus the newcomer). So none that was pending could start or preempt now if it could not before.
    Nor can a victim, whatever the victims free: the greedy's slack only shrinks, by each reprieve,
    ending at the new `available`; so when a victim's turn came the slack was the new `available`
    plus every candidate reprieved after it (among them all that still run below the victim), and
    that could not hold the victim: it can neither fit nor free enough below its own priority.
    """
    freed = total(v.resources for v in victims)
    return freed.fits_in(need)
