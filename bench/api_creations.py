"""Deployment creations per second through the API on PostgreSQL: on an empty cluster and behind a
backlog, with the CPU each creation costs the server and PostgreSQL.

Run from the project root: `python -m bench.api_creations [--duration 8] [--workers 2]`.
Creates the database `mlops_bench_api_creations`, serves `app.main:app` (uvicorn --workers N) and
drives `POST /clusters/{id}/deployments` from this process (the harness's closed loop over
keep-alive connections), on a fresh cluster per (setup, concurrency) cell. Request i: two in three
create a priority-0 deployment of 1 cpu (pending on a full cluster), every third a 1-cpu preemptor
of priority 1, 2, ... (capped at 1000) that evicts the lowest running one. `empty`: 64 cpu,
256 GiB, 8 gpu, nothing in it (the unmeasured warm-up fills it). `backlog`: 1000 cpu and, inserted
by SQL, 1,000 running + 10,000 pending (cpu 1, priority 0, half of the pending `never`). Per cell:
creations/s, latency, preemptions, the CPU milliseconds per creation of the uvicorn processes and
of the PostgreSQL backends serving the database (those still connected at the end of the cell),
the cores of this process (the load generator) and of every other process meanwhile.
Prints markdown tables, checks the allocation invariant of every cluster, drops the database.
"""

import argparse
import itertools
import json
import os
import sys
from dataclasses import dataclass, field

from bench.harness import (
    Account,
    CpuReading,
    Servers,
    app_env,
    connect,
    cores,
    cpu_reading,
    databases,
    drive,
    family,
    machine_line,
    postgres_backends,
    request,
    run,
    signed_up,
    sql,
    table,
    uvicorn_command,
)

DB_NAME = "mlops_bench_api_creations"
CAPACITY = {"empty": (64, 256, 8), "backlog": (1000, 4000, 8)}  # cpu, ram_gb, gpu
RUNNING, PENDING, MAX_PRIORITY = 1_000, 10_000, 1000
ONE_CPU = {"cpu": 1, "ram_gb": 0, "gpu": 0}

BACKLOG_SQL = """
INSERT INTO deployments (id, organization_id, cluster_id, name, model, cpu_millis, ram_millis, gpu,
    priority, preemption_policy, status, status_reason, unmet_dependencies, preemption_count,
    created_by, started_at, finished_at, created_at)
SELECT gen_random_uuid(), %(org)s, %(cluster)s, 'backlog-' || i, 'mock', 1000, 0, 0, 0,
    CASE WHEN i > %(running)s AND i %% 2 = 0 THEN 'never' ELSE 'preempt_lower_priority' END,
    CASE WHEN i <= %(running)s THEN 'running' ELSE 'pending' END, NULL, 0, 0, %(user)s,
    CASE WHEN i <= %(running)s THEN t0 + i * interval '1 ms' END, NULL, t0 + i * interval '1 ms'
FROM generate_series(1, %(total)s) AS i, (SELECT now() - interval '1 hour' AS t0) AS base
"""
BACKLOG_COUNTERS_SQL = """
UPDATE clusters SET allocated_cpu_millis = %s, running_count = %s, pending_count = %s WHERE id = %s
"""
INVARIANT_SQL = """
SELECT c.name, c.capacity_cpu_millis, c.allocated_cpu_millis, c.allocated_ram_millis,
    c.allocated_gpu, c.capacity_ram_millis, c.capacity_gpu, c.running_count, c.pending_count,
    coalesce(sum(d.cpu_millis) FILTER (WHERE d.status = 'running'), 0),
    coalesce(sum(d.ram_millis) FILTER (WHERE d.status = 'running'), 0),
    coalesce(sum(d.gpu) FILTER (WHERE d.status = 'running'), 0),
    count(d.id) FILTER (WHERE d.status = 'running'), count(d.id) FILTER (WHERE d.status = 'pending')
FROM clusters c LEFT JOIN deployments d ON d.cluster_id = c.id GROUP BY c.id ORDER BY c.created_at
"""
PREEMPTED_SQL = """SELECT count(*) FROM deployment_events e JOIN deployments d
ON d.id = e.deployment_id WHERE d.cluster_id = %s AND e.type = 'preempted'"""


@dataclass
class Cell:
    """One (setup, concurrency) cell: its own cluster and its own request/priority counters."""

    setup: str
    concurrency: int
    cluster_id: str
    port: int
    cookie: str
    requests: "itertools.count[int]" = field(default_factory=itertools.count)
    priorities: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def next_request(self) -> bytes:
        i = next(self.requests)
        priority = min(next(self.priorities), MAX_PRIORITY) if i % 3 == 2 else 0
        new = {"name": f"{self.setup}-{i}", "model": "mock", "resources": ONE_CPU}
        body = json.dumps({**new, "priority": priority}).encode()
        path = f"/api/v1/clusters/{self.cluster_id}/deployments"
        return request("POST", path, self.port, cookie=self.cookie, body=body)


@dataclass
class Result:
    setup: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    preemptions: int
    server_ms: float  # CPU ms per creation: the uvicorn processes
    postgres_ms: float  # CPU ms per creation: the PostgreSQL backends of the database
    client: float  # cores used by this process (the load generator)
    other: float  # cores used by every other process meanwhile

    def row(self) -> list[object]:
        return [
            *(self.setup, self.concurrency, f"{self.rps:.0f}"),
            *(f"{self.p50_ms:.1f}", f"{self.p99_ms:.1f}", self.preemptions),
            *(f"{self.server_ms:.1f}", f"{self.postgres_ms:.1f}"),
            *(f"{self.client:.2f}", f"{self.other:.2f}"),
        ]


COLUMNS = ["setup", "concurrency", "creations/s", "p50 ms", "p99 ms", "preemptions"]
COLUMNS += ["server CPU ms/creation", "PostgreSQL CPU ms/creation", "client (cores)"]
COLUMNS += ["other load (cores)"]


def new_cluster(account: Account, organization: str, setup: str, concurrency: int) -> str:
    cpu, ram, gpu = CAPACITY[setup]
    cluster_id = account.cluster(organization, f"{setup}-c{concurrency}", cpu, ram, gpu)
    if setup == "backlog":
        params: dict[str, object] = {"org": organization, "cluster": cluster_id, "running": RUNNING}
        params |= {"user": account.user_id, "total": RUNNING + PENDING}
        with connect(DB_NAME, autocommit=False) as conn:  # rows and counters: one transaction
            conn.execute(BACKLOG_SQL.encode(), params)
            counters = (RUNNING * 1000, RUNNING, PENDING, cluster_id)
            conn.execute(BACKLOG_COUNTERS_SQL.encode(), counters)
        sql("ANALYZE deployments", database=DB_NAME)  # what a long-lived database's statistics say
    return cluster_id


async def measure(cell: Cell, server_pid: int, warmup: float, duration: float) -> Result:
    await drive(cell.port, cell.next_request, cell.concurrency, warmup, expect=201)
    if cell.setup == "empty":  # the warm-up fills the empty cluster, the pools, the caches
        running = sql(
            "SELECT running_count FROM clusters WHERE id = %s", cell.cluster_id, database=DB_NAME
        )
        if running != CAPACITY["empty"][0]:
            raise RuntimeError(f"warm-up left the empty cluster at {running} running; raise it")
    preempted = sql(PREEMPTED_SQL, cell.cluster_id, database=DB_NAME)

    def reading() -> CpuReading:
        client, backends = [os.getpid()], postgres_backends(DB_NAME)
        return cpu_reading(server=family(server_pid), postgres=backends, client=client)

    before = reading()
    sample = await drive(cell.port, cell.next_request, cell.concurrency, duration, expect=201)
    used = cores(before, reading(), sample.elapsed)
    preemptions = sql(PREEMPTED_SQL, cell.cluster_id, database=DB_NAME) - preempted
    per_creation = 1000 / sample.rate  # ms of one core per creation at this rate
    return Result(
        cell.setup,
        cell.concurrency,
        sample.rate,
        sample.ms(0.5),
        sample.ms(0.99),
        preemptions,
        used["server"] * per_creation,
        used["postgres"] * per_creation,
        used["client"],
        used["other"],
    )


def check_invariants() -> list[str]:
    lines, broken = ["Invariant per cluster (allocated == sum(running) <= capacity):"], 0
    with connect(DB_NAME) as conn:
        for row in conn.execute(INVARIANT_SQL.encode()):
            name, cap_cpu, a_cpu, a_ram, a_gpu, cap_ram, cap_gpu, rc, pc, *sums = row
            ok = (a_cpu, a_ram, a_gpu, rc, pc) == tuple(sums) and a_cpu <= cap_cpu
            ok = ok and a_ram <= cap_ram and a_gpu <= cap_gpu
            broken += not ok
            lines.append(
                f"- {name}: allocated cpu {a_cpu / 1000:g}/{cap_cpu / 1000:g}, sum running "
                f"{sums[0] / 1000:g}, running {rc}/{sums[3]}, pending {pc}/{sums[4]}: "
                + ("ok" if ok else "BROKEN")
            )
    if broken:
        print("\n".join(lines))
        raise SystemExit(f"{broken} cluster(s) break the allocation invariant")
    return lines


def report(results: list[Result], args: argparse.Namespace) -> str:
    header = (
        f"{machine_line()}; uvicorn --workers {args.workers}; PostgreSQL {DB_NAME}; "
        f"{args.warmup:g} s warm-up (unmeasured; fills the empty cluster) + {args.duration:g} s "
        "per cell; fresh cluster per cell"
    )
    cells = table(COLUMNS, [r.row() for r in results])
    by_key = {(r.setup, r.concurrency): r for r in results}
    ratios = table(
        ["concurrency", "backlog/empty creations/s"],
        [[c, f"{by_key['backlog', c].rps / by_key['empty', c].rps:.2f}"] for c in args.concurrency],
        align="rr",
    )
    return f"{header}\n\n{cells}\n\n{ratios}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per cell")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    with databases(DB_NAME) as [url], Servers() as servers:
        port = servers.start(
            lambda port: uvicorn_command("app.main:app", port, args.workers), app_env(url)
        )
        server_pid = servers.procs[-1].pid
        with signed_up(port) as account:
            organization = account.organization("Bench")

            async def cells() -> list[Result]:
                results = []
                for setup in ("empty", "backlog"):
                    for c in args.concurrency:
                        cluster_id = new_cluster(account, organization, setup, c)
                        cell = Cell(setup, c, cluster_id, port, account.cookie)
                        results.append(await measure(cell, server_pid, args.warmup, args.duration))
                        print(results[-1], file=sys.stderr, flush=True)
                return results

            results = run(cells())
        print(report(results, args) + "\n\n" + "\n".join(check_invariants()))


if __name__ == "__main__":
    main()
