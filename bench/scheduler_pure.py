"""Benchmark: full scheduling passes of the pure scheduler (no database).

    python -m bench.scheduler_pure      (from the project root)

A cluster is filled by 1k running deployments; a backlog of n pending ones (1k, 10k, 100k, in
shuffled order) is scheduled in one full pass. A "decision" is one pending deployment considered
(started, skipped, failed or preempting). Fixed seed; the best of a few runs is reported.

Workloads:
* mixed:  running priorities 50-99; 97% of the backlog at 0-49 (70% of it may preempt, none can:
          the O(log) early-out), 3% urgent at 100-119 (they evict: some preemption).
* stress: running and backlog priorities overlap (0-99 vs 0-119), 70% may preempt: most of the
          running set is evicted and replaced; each eviction walks all lower candidates.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from app.scheduling import (
    Decision,
    PendingDeployment,
    Resources,
    RunningDeployment,
    get_strategy,
    schedule,
)
from bench.harness import machine_line, table

SEED = 20261129
T0 = datetime(2026, 11, 29, tzinfo=UTC)
RUNNING = 1_000
SIZES = (1_000, 10_000, 100_000)

Cluster = tuple[Resources, list[RunningDeployment], list[PendingDeployment]]


def _resources(rng: random.Random) -> Resources:
    return Resources(
        rng.choice((250, 500, 1000, 2000, 4000)),
        rng.choice((512, 1024, 2048, 4096, 8192)),
        1 if rng.random() < 0.05 else 0,
    )


def make_cluster(n_pending: int, workload: str) -> Cluster:
    rng = random.Random(SEED)
    running = []
    for i in range(RUNNING):
        at = T0 + timedelta(seconds=i)
        priority = rng.randrange(50, 100) if workload == "mixed" else rng.randrange(100)
        running.append(RunningDeployment(UUID(int=i + 1), priority, _resources(rng), at, at, True))
    used = Resources.sum(r.resources for r in running)
    capacity = used + Resources(8_000, 16_384, 2)  # a little room: a few start without evicting
    pending = []
    for i in range(n_pending):
        if workload == "mixed":
            urgent = rng.random() < 0.03
            priority = rng.randrange(100, 120) if urgent else rng.randrange(50)
        else:
            priority = rng.randrange(120)
        created = T0 + timedelta(hours=1, seconds=i)
        may_preempt = rng.random() < 0.7
        pending.append(
            PendingDeployment(
                UUID(int=1_000_000 + i), priority, _resources(rng), created, may_preempt
            )
        )
    rng.shuffle(pending)  # the scheduler must not rely on input order
    return capacity, running, pending


def time_pass(cluster: Cluster, strategy: str, repeats: int) -> tuple[float, Decision]:
    capacity, running, pending = cluster
    best, decision = math.inf, Decision()
    now = T0 + timedelta(days=1)
    for _ in range(repeats):
        started = time.perf_counter()
        decision = schedule(capacity, running, pending, get_strategy(strategy), now)
        best = min(best, time.perf_counter() - started)
    return best, decision


def main() -> None:
    print(f"{machine_line()}; seed {SEED}\n")
    rows = []
    for workload, strategy in (("mixed", "priority"), ("mixed", "none"), ("stress", "priority")):
        previous: tuple[int, float] | None = None
        for n in SIZES:
            seconds, decision = time_pass(make_cluster(n, workload), strategy, 3)
            if previous is None:
                growth = expected = "-"
            else:
                growth = f"x{seconds / previous[1]:.1f}"
                expected = f"x{n * math.log(n) / (previous[0] * math.log(previous[0])):.1f}"
            previous = (n, seconds)
            rows.append(
                [
                    workload,
                    strategy,
                    f"{n:,}",
                    f"{RUNNING:,}",
                    f"{len(decision.started):,}",
                    f"{len(decision.evicted):,}",
                    f"{seconds * 1000:,.1f}",
                    f"{n / seconds:,.0f}",
                    growth,
                    expected,
                ]
            )
    columns = ["workload", "strategy", "pending", "running", "started", "evicted", "pass (ms)"]
    columns += ["decisions/s", "time growth", "n log n growth"]
    print(table(columns, rows, align="llrrrrrrrr"))


if __name__ == "__main__":
    main()
