"""The load drill's report: totals, latency quantiles per kind of request, a markdown table."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bench.load_drill.checks import Finished
from bench.load_drill.scene import KINDS
from bench.load_drill.traffic import Tally


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank q-quantile of values sorted in ascending order (as bench/harness.py)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Report:
    users: int
    orgs: int
    duration: float  # asked
    elapsed: float  # from the first user's start to the last one's end
    setup_seconds: float
    ended: datetime  # when the traffic ended
    tally: Tally
    finished: Finished
    accounting: list[str]
    deployments: int
    preemptions: int

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.tally.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for c in self.tally.statuses.values() for s, n in c.items() if s >= 500)

    @property
    def unexpected(self) -> dict[str, Counter[int]]:
        """Statuses outside each kind's expected set, by kind."""
        found = {}
        for kind, counts in self.tally.statuses.items():
            odd = Counter({s: n for s, n in counts.items() if s not in KINDS[kind][1]})
            if odd:
                found[kind] = odd
        return found

    @property
    def drain_seconds(self) -> float:
        """From the end of the traffic until the last asynchronous prediction was done."""
        last = self.finished.last or self.ended
        return max(0.0, (last - self.ended).total_seconds())

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed

    def quantiles_ms(self, kind: str | None = None) -> tuple[float, float]:
        chosen = [kind] if kind else list(self.tally.latencies)
        ordered = sorted(x for k in chosen for x in self.tally.latencies.get(k, []))
        return percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000

    def render(self) -> str:
        rows = []
        for kind in [*KINDS, None]:
            statuses = self.tally.statuses.get(kind, Counter()) if kind else Counter()
            if kind is None:
                for counts in self.tally.statuses.values():
                    statuses.update(counts)
            count = sum(statuses.values())
            p50, p99 = self.quantiles_ms(kind)
            shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            rows.append(
                [
                    kind or "**all**",
                    count,
                    f"{count / self.elapsed:.1f}",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    shown,
                ]
            )
        head = [
            "| kind | requests | req/s | p50 ms | p99 ms | statuses |",
            "|---|---:|---:|---:|---:|---|",
        ]
        lines = [*head, *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]
        waits = sorted(self.finished.seconds)
        p50, p99 = percentile(waits, 0.5) * 1000, percentile(waits, 0.99) * 1000
        summary = (
            f"{self.users} users in {self.orgs} organizations, {self.elapsed:.1f} s of traffic "
            f"(setup {self.setup_seconds:.1f} s): {self.requests} requests, "
            f"{self.throughput:.1f} req/s, p50 {self.quantiles_ms()[0]:.1f} ms, "
            f"p99 {self.quantiles_ms()[1]:.1f} ms; 5xx: {self.server_errors}; "
            f"unexpected statuses: {dict(self.unexpected) or 0}; "
            f"transport errors: {dict(self.tally.transport_errors) or 0}; "
            f"async predictions: {dict(self.finished.statuses)}, accepted to done p50 "
            f"{p50:.0f} ms, p99 {p99:.0f} ms, the last done {self.drain_seconds:.1f} s after the "
            f"traffic; {self.deployments} deployments, {self.preemptions} preemptions; "
            f"books: {'exact' if not self.accounting else self.accounting}"
        )
        return "\n".join([summary, "", *lines])
