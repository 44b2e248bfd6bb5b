"""Which pending deployments a pass could act on, as index-friendly range predicates.

The service must not load a cluster's whole backlog for every pass. After a pass the cluster is at
a fixpoint (nothing pending fits, no preemptor can get victims), so only a change of state can make
a pending deployment actionable, and this filter describes a superset of those, computed from the
running set alone:

* fits:      cpu <= available.cpu AND ram <= available.ram AND gpu <= available.gpu. Exactly the
             deployments that would start if considered now.
* oversized: cpu > capacity.cpu OR ram > ... OR gpu > ...: they can never run; the pass fails them
             (after a capacity shrink).
* bands:     may_preempt AND priority BETWEEN lo AND hi AND resources <= band.max_resources.
             Every strategy evicts only strictly lower priorities, so a newcomer of priority p can
             at best free `available + (resources running below p)` = capacity - (resources running
             at p or above). That bound is a step function of p that changes only at the running
             priorities, giving one band per running priority level; bands are then merged, each
             merged band keeping the largest bound of its members (the bound grows with p), so the
             result stays a superset. For `priority` the unmerged bound is exact.

In SQL, with an index on (cluster_id, priority DESC, created_at, id) over pending rows:

    WHERE (cpu_millis <= :fit_cpu AND ram_millis <= :fit_ram AND gpu <= :fit_gpu)
       OR cpu_millis > :cap_cpu OR ram_millis > :cap_ram OR gpu > :cap_gpu
       OR (preemption_policy = 'preempt_lower_priority' AND priority BETWEEN :lo AND :hi
           AND cpu_millis <= :max_cpu AND ram_millis <= :max_ram AND gpu <= :max_gpu)  -- per band
    AND id NOT IN (:already_considered)
    ORDER BY priority DESC, created_at, id LIMIT :limit
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.resources import Resources
from app.scheduling.running import RunningSet

DEFAULT_MAX_BANDS = 8


@dataclass(frozen=True, slots=True)
class Band:
    """may_preempt deployments with priority_min <= priority <= priority_max (None: no upper
    bound) whose resources fit in max_resources."""

    priority_min: int
    priority_max: int | None
    max_resources: Resources

    def matches(self, pending: PendingDeployment) -> bool:
        return (
            pending.may_preempt
            and self.priority_min <= pending.priority
            and (self.priority_max is None or pending.priority <= self.priority_max)
            and pending.resources.fits_in(self.max_resources)
        )


@dataclass(frozen=True, slots=True)
class RelevanceFilter:
    """A superset of the pending deployments a pass could start, preempt for, or fail.

    `limit`: the fetch returns at most this many, the first ones in scheduling order; the driver
    fetches again if it needs to look past the last one.
    """

    fits: Resources
    capacity: Resources
    bands: tuple[Band, ...]
    limit: int | None = None

    def matches(self, pending: PendingDeployment) -> bool:
        """The filter in Python, for in-memory fetches and tests; the service uses SQL."""
        res = pending.resources
        if res.fits_in(self.fits) or not res.fits_in(self.capacity):
            return True
        return any(band.matches(pending) for band in self.bands)


def relevance_filter(
    capacity: Resources,
    running: RunningSet | Iterable[RunningDeployment],
    *,
    preemption: bool = True,
    limit: int | None = None,
    max_bands: int = DEFAULT_MAX_BANDS,
) -> RelevanceFilter:
    """The filter for this cluster state; `preemption=False` when the strategy never evicts."""
    if max_bands < 1:
        raise ValueError("max_bands must be at least 1")
    running_set = running if isinstance(running, RunningSet) else RunningSet(running)
    available = capacity - running_set.total
    bands: list[Band] = []
    if preemption:
        levels = running_set.priority_totals()
        below = Resources.zero()
        for i, (level, level_total) in enumerate(levels):
            below = below + level_total
            upper = levels[i + 1][0] if i + 1 < len(levels) else None
            # Priorities in (level, next level] can evict everything at `level` and below.
            bands.append(Band(level + 1, upper, available + below))
    return RelevanceFilter(available, capacity, _merge(bands, max_bands), limit)


def _merge(bands: list[Band], max_bands: int) -> tuple[Band, ...]:
    """At most `max_bands` bands, each covering consecutive ones with the largest bound among them.

    Bounds grow with priority, so the last band of a group has the largest one. Even chunks keep
    the SQL short; a merged band only admits extra rows that the pass then skips.
    """
    if len(bands) <= max_bands:
        return tuple(bands)
    merged: list[Band] = []
    count = len(bands)
    for group in range(max_bands):
        first = bands[group * count // max_bands]
        last = bands[(group + 1) * count // max_bands - 1]
        merged.append(Band(first.priority_min, last.priority_max, last.max_resources))
    return tuple(merged)
