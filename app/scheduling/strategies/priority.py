"""The `priority` strategy: kube-scheduler's victim selection, on one pool of capacity.

Candidates are the running deployments of strictly lower priority. If evicting all of them would
not make the newcomer fit in every dimension, evict none. Otherwise start from "all evicted" and
reprieve candidates one at a time, from the highest priority down (equal priority: earliest started
first, then id), keeping each reprieve that still leaves room. What is left are the victims: no
single one of them could have been spared.
"""

from __future__ import annotations

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.reprieve import reprieve
from app.scheduling.resources import Resources
from app.scheduling.running import RunningSet


class PriorityPreemption:
    """Evict strictly lower priorities, sparing the highest first, as kube-scheduler does."""

    name = "priority"
    evicts = True
    victims_from_tail = True

    def select_victims(
        self, newcomer: PendingDeployment, running: RunningSet, available: Resources
    ) -> list[RunningDeployment] | None:
        need = newcomer.resources
        # O(log levels) early-out, before touching any candidate: a backlog of deployments that
        # cannot preempt costs a prefix sum each, not a scan of the running set.
        free = available + running.lower_total(newcomer.priority)
        if not need.fits_in(free):
            return None
        return reprieve(need, free, running.lower_in_reprieve_order(newcomer.priority))
