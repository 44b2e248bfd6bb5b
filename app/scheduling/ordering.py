"""The two orders scheduling lives by, declared once.

Everything else follows them: the SQL ORDER BY clauses and the indexes are derived from these
declarations (`app/models/deployment.py`); the hot Python sort keys (`scheduler._key`,
`running._slot`) are written out for speed and proven equal to them by `tests/scheduling/
test_ordering.py`; the SQL that counts queue positions is checked against the pure scheduler on
random worlds in PostgreSQL (`tests/services/test_sql_mirrors.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any


@dataclass(frozen=True, slots=True)
class Order:
    """A lexicographic order over attributes, each ascending or descending."""

    name: str
    fields: tuple[tuple[str, bool], ...]  # (attribute, descending)

    def reversed(self) -> Order:
        return Order(f"{self.name} reversed", tuple((f, not desc) for f, desc in self.fields))

    def compare(self, left: Any, right: Any) -> int:
        """-1, 0 or 1, as `left` comes before, with or after `right` (attributes read by name)."""
        for attribute, descending in self.fields:
            a, b = getattr(left, attribute), getattr(right, attribute)
            if a != b:
                before = a > b if descending else a < b
                return -1 if before else 1
        return 0

    def sort_key(self) -> Any:
        """A key for `sorted`: slow and generic, for tests and cold paths only."""
        return cmp_to_key(self.compare)


# The queue: pending deployments are considered by priority (high first), then by arrival
# (FIFO), then by id (rule 2 of the scheduling semantics).
QUEUE = Order("queue", (("priority", True), ("created_at", False), ("id", False)))

# Reprieve order (kube-scheduler's): among preemption candidates, the highest priority is spared
# first, and among equals the earliest started. Victims come from its end, so it is read reversed
# (lowest first) whenever candidates are loaded.
REPRIEVE = Order("reprieve", (("priority", True), ("started_at", False), ("id", False)))
