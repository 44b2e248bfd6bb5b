"""The books every scheduling state must balance, checked in the database itself."""

import psycopg


def check_books(postgres_url: str) -> None:
    """Every cluster's `allocated` is the sum of its running deployments and within capacity, its
    counts match, and no pending deployment waits on a failed dependency or a wrong count."""
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            """
            SELECT c.id, c.capacity_cpu_millis, c.capacity_ram_millis, c.capacity_gpu,
                   c.allocated_cpu_millis, c.allocated_ram_millis, c.allocated_gpu,
                   c.running_count, c.pending_count,
                   COALESCE(SUM(d.cpu_millis) FILTER (WHERE d.status = 'running'), 0),
                   COALESCE(SUM(d.ram_millis) FILTER (WHERE d.status = 'running'), 0),
                   COALESCE(SUM(d.gpu) FILTER (WHERE d.status = 'running'), 0),
                   COUNT(d.id) FILTER (WHERE d.status = 'running'),
                   COUNT(d.id) FILTER (WHERE d.status = 'pending')
            FROM clusters c LEFT JOIN deployments d ON d.cluster_id = c.id
            GROUP BY c.id
            """
        ).fetchall()
        for row in rows:
            capacity, allocated, running_sum = row[1:4], row[4:7], row[9:12]
            assert allocated == running_sum, row
            assert all(a <= c for a, c in zip(allocated, capacity, strict=True)), row
            assert (row[7], row[8]) == (row[12], row[13]), row
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
