"""The books every scheduling state must balance, checked in the database itself."""

from collections.abc import Sequence
from typing import Any

import psycopg

# Per cluster: capacity, allocated and counts as stored (columns 1-8), and the same recomputed from
# its deployment rows (9-13), then the preempting count stored and recomputed (14-15). Running and
# preempting deployments both hold resources. `{where}` narrows it to some clusters.
CLUSTER_BOOKS = """
    SELECT c.id, c.capacity_cpu_millis, c.capacity_ram_millis, c.capacity_gpu,
           c.allocated_cpu_millis, c.allocated_ram_millis, c.allocated_gpu,
           c.running_count, c.pending_count,
           COALESCE(SUM(d.cpu_millis) FILTER (WHERE d.status IN ('running', 'preempting')), 0),
           COALESCE(SUM(d.ram_millis) FILTER (WHERE d.status IN ('running', 'preempting')), 0),
           COALESCE(SUM(d.gpu) FILTER (WHERE d.status IN ('running', 'preempting')), 0),
           COUNT(d.id) FILTER (WHERE d.status = 'running'),
           COUNT(d.id) FILTER (WHERE d.status = 'pending'),
           c.preempting_count,
           COUNT(d.id) FILTER (WHERE d.status = 'preempting')
    FROM clusters c LEFT JOIN deployments d ON d.cluster_id = c.id
    {where}
    GROUP BY c.id
"""


def assert_balanced(rows: Sequence[Sequence[Any]]) -> None:
    """`allocated` is the sum of the running deployments and within capacity; counts match."""
    for row in rows:
        capacity, allocated, running_sum = tuple(row[1:4]), tuple(row[4:7]), tuple(row[9:12])
        assert allocated == running_sum, f"cluster {row[0]}: allocated {allocated} != {running_sum}"
        assert all(a <= c for a, c in zip(allocated, capacity, strict=True)), row
        assert (row[7], row[8]) == (row[12], row[13]), f"cluster {row[0]}: counts {row[7:9]}"
        assert row[14] == row[15], f"cluster {row[0]}: preempting count {row[14]} != {row[15]}"


def check_books(postgres_url: str) -> None:
    """Every cluster's books balance (`assert_balanced`), and no pending deployment waits on a
    failed dependency or with a wrong count of unmet ones."""
    with psycopg.connect(postgres_url) as conn:
        assert_balanced(conn.execute(CLUSTER_BOOKS.format(where="")).fetchall())
        stranded = conn.execute(
            """
            SELECT d.id FROM deployments d
            JOIN deployment_dependencies e ON e.deployment_id = d.id
            JOIN deployments dep ON dep.id = e.depends_on_id
            WHERE d.status = 'pending' AND dep.status IN ('failed', 'cancelled')
            """
        ).fetchall()
        assert stranded == [], "a pending deployment waits on a failed dependency"
        miscounted = conn.execute(
            """
            SELECT d.id FROM deployments d
            WHERE d.status = 'pending' AND d.unmet_dependencies <> (
                SELECT COUNT(*) FROM deployment_dependencies e
                JOIN deployments dep ON dep.id = e.depends_on_id
                WHERE e.deployment_id = d.id AND dep.status <> 'completed')
            """
        ).fetchall()
        assert miscounted == [], "unmet dependency counts drifted"
