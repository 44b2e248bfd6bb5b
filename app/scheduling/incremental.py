"""Passes that load only what they need: the service's entry point.

A cluster sits at a fixpoint between passes (nothing pending can act), so a pass only has to look
at deployments a change could have made actionable:

* creating a deployment: only the newcomer can act (`at_fixpoint=True`), so nothing is fetched
  unless it evicts someone;
* room appeared (a deployment completed or was cancelled, capacity changed): fetch what the
  relevance filter admits, in scheduling order, a page at a time.

The pass fetches again after each eviction, before acting further, and when its walk reaches the
end of the last page. Between fetches it only starts deployments, and a start never makes anyone
actionable, so every deployment that could act ahead of the walk has been fetched: the decision is
exactly the one a full `schedule` over the whole backlog would take (the property tests check it).
Fetch calls: none for a newcomer that starts or waits; one up front when room appeared; one more
per preemption and per page filled to its limit. Typically 0 to 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from app.scheduling.entities import Decision, PendingDeployment, RunningDeployment
from app.scheduling.relevance import DEFAULT_MAX_BANDS
from app.scheduling.resources import Resources
from app.scheduling.scheduler import Fetch, SchedulingPass
from app.scheduling.strategies import Strategy

DEFAULT_PAGE_SIZE = 100


def schedule_incremental(
    capacity: Resources,
    running: Sequence[RunningDeployment],
    newcomers: Iterable[PendingDeployment],
    fetch: Fetch,
    strategy: Strategy,
    now: datetime,
    *,
    at_fixpoint: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_bands: int = DEFAULT_MAX_BANDS,
    grace: timedelta | None = None,
    reserved: Mapping[UUID, Resources] | None = None,
) -> Decision:
    """Schedule `newcomers` plus whatever `fetch` returns, to the same result as a full pass.

    `at_fixpoint`: True when the cluster's last pass ran to completion and nothing changed since
    but the arrival of `newcomers` (then nothing is fetched up front). `fetch(filter, seen)` must
    return the first `filter.limit` pending deployments of the cluster (dependencies met) that match
    `filter` and are not in `seen`, in scheduling order. `grace` and `reserved` as for `schedule`;
    the preemptors holding a reservation must be among `newcomers` (the relevance filter does
    not know what is reserved for them).
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    scheduling_pass = SchedulingPass(
        capacity,
        running,
        strategy,
        now,
        fetch=fetch,
        page_size=page_size,
        max_bands=max_bands,
        grace=grace,
        reserved=reserved,
    )
    scheduling_pass.add(newcomers)
    if not at_fixpoint:
        scheduling_pass.refill()
    return scheduling_pass.run()
