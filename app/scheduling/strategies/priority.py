"""The `priority` strategy: kube-scheduler's victim selection, on one pool of capacity.

Candidates are the running deployments of strictly lower priority. If evicting all of them would
not make the newcomer fit in every dimension, evict none. Otherwise start from "all evicted" and
reprieve candidates one at a time, from the highest priority down (equal priority: earliest started
first, then id), keeping each reprieve that still leaves room. What is left are the victims: no
single one of them could have been spared.
"""

from __future__ import annotations

from app.scheduling.entities import PendingDeployment, RunningDeployment
from app.scheduling.resources import Resources
from app.scheduling.running import RunningSet


class PriorityPreemption:
    """Evict the fewest lower-priority deployments needed, as kube-scheduler does (the default)."""

    name = "priority"
    evicts = True

    def select_victims(
        self, newcomer: PendingDeployment, running: RunningSet, available: Resources
    ) -> list[RunningDeployment] | None:
        need = newcomer.resources
        # O(log levels) early-out, before touching any candidate: a backlog of deployments that
        # cannot preempt costs a prefix sum each, not a scan of the running set.
        free = available + running.lower_total(newcomer.priority)
        if not need.fits_in(free):
            return None
        # Plain ints in the loop: it runs once per candidate when an eviction does happen.
        slack_cpu = free.cpu_millis - need.cpu_millis
        slack_ram = free.ram_millis - need.ram_millis
        slack_gpu = free.gpu - need.gpu
        victims: list[RunningDeployment] = []
        for candidate in running.lower_in_reprieve_order(newcomer.priority):
            res = candidate.resources
            if res.cpu_millis <= slack_cpu and res.ram_millis <= slack_ram and res.gpu <= slack_gpu:
                slack_cpu -= res.cpu_millis
                slack_ram -= res.ram_millis
                slack_gpu -= res.gpu
            else:
                victims.append(candidate)
        # Lowest priority first: the order the evictions are recorded and their events written.
        victims.reverse()
        return victims or None
