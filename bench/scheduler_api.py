# ruff: noqa: E402 - the sys.path fix below has to run before any import that reaches `http`.
"""API deployment creations per second on PostgreSQL, on an empty cluster and behind a backlog.

Run by hand from the project root: `python bench/scheduler_api.py [--duration 8] [--workers 2]`.
Creates the database `mlops_bench_sched` on 127.0.0.1:5432, serves `app.main:app` (uvicorn
--workers N, subprocess) and drives `POST /clusters/{id}/deployments` from this process (closed
loop, keep-alive raw sockets), on a fresh cluster per (setup, concurrency) cell. Request i:
two in three create a priority-0 deployment of 1 cpu (pending on a full cluster), every third a
1-cpu preemptor of priority 1, 2, ... (capped at 1000) that evicts the lowest running one.
`empty`: 64 cpu, 256 GiB, 8 gpu, nothing in it (the unmeasured warm-up fills it). `backlog`:
1000 cpu and, inserted by SQL, 1,000 running + 10,000 pending (cpu 1, priority 0, half of the
pending `never`). Prints a markdown table, checks the allocation invariant, drops the database.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, where bench/http.py shadows stdlib `http`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import cast

import httpx
import psycopg
import uvloop

HOST = "127.0.0.1"  # never anything but loopback
DB_NAME = "mlops_bench_sched"
ADMIN_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
DB_URL = f"postgresql+psycopg://postgres@{HOST}:5432/{DB_NAME}"
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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time (from bench/http.py)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:head_end]).lower()
        _, found, rest = head.partition(b"\r\ncontent-length:")
        if not found:
            self.waiter.set_exception(RuntimeError(f"no Content-Length in {head!r}"))
            return
        end = head_end + 4 + int(rest.split(b"\r\n", 1)[0])
        if len(self.buffer) >= end:
            body = bytes(self.buffer[head_end + 4 : end])
            del self.buffer[:end]
            self.waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("server closed the connection"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


@dataclass
class Cell:
    """One (setup, concurrency) cell: its own cluster and its own request/priority counters."""

    setup: str
    concurrency: int
    cluster_id: str
    port: int
    cookie: str

    def __post_init__(self) -> None:
        self.requests = itertools.count()
        self.priorities = itertools.count(1)

    def next_request(self) -> bytes:
        i = next(self.requests)
        priority = min(next(self.priorities), MAX_PRIORITY) if i % 3 == 2 else 0
        new = {"name": f"{self.setup}-{i}", "model": "mock", "resources": ONE_CPU}
        body = json.dumps({**new, "priority": priority}).encode()
        return (
            f"POST /api/v1/clusters/{self.cluster_id}/deployments HTTP/1.1\r\n"
            f"Host: {HOST}:{self.port}\r\nCookie: session={self.cookie}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def drive(self, seconds: float) -> tuple[list[float], float]:
        """Closed loop: each connection sends its next request as soon as the last one answered."""
        loop = asyncio.get_running_loop()
        conns = [
            (await loop.create_connection(_Connection, HOST, self.port))[1]
            for _ in range(self.concurrency)
        ]
        latencies: list[float] = []
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(conn: _Connection) -> None:
            while (sent := time.perf_counter()) < deadline:
                status, body = await conn.request(self.next_request())
                latencies.append(time.perf_counter() - sent)
                if status != 201:
                    raise RuntimeError(f"{self.setup}/c{self.concurrency}: {status} {body[:300]!r}")

        try:
            await asyncio.gather(*(worker(conn) for conn in conns))
        finally:
            for conn in conns:
                assert conn.transport is not None
                conn.transport.close()
        return latencies, time.perf_counter() - start


@dataclass
class Result:
    setup: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    preemptions: int


def _sql(sql: str, *params: object, dsn: str = BENCH_DSN) -> int:
    """One autocommit statement (fixed text built here, never user input): its first value, or 0."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql.encode(), params)
        row = cur.fetchone() if cur.description else None
    return 0 if row is None else int(row[0])


def _serve(workers: int, servers: list[subprocess.Popen[bytes]]) -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    env = {"DATABASE_URL": DB_URL, "RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env, "SECRET_KEY": "bench"})
    servers.append(proc)  # before waiting, so that the caller's cleanup always sees it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://{HOST}:{port}/ready", timeout=1).status_code == 200:
                return port
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not become ready on {port}")


def _new_cluster(client: httpx.Client, org: str, user: str, setup: str, concurrency: int) -> str:
    cpu, ram, gpu = CAPACITY[setup]
    body = {"name": f"{setup}-c{concurrency}", "resources": {"cpu": cpu, "ram_gb": ram, "gpu": gpu}}
    cluster = client.post(f"/api/v1/organizations/{org}/clusters", json=body).raise_for_status()
    cluster_id: str = cluster.json()["id"]
    if setup == "backlog":
        params = {"org": org, "cluster": cluster_id, "user": user, "running": RUNNING}
        with psycopg.connect(BENCH_DSN) as conn:  # one transaction: rows and counters together
            conn.execute(BACKLOG_SQL.encode(), {**params, "total": RUNNING + PENDING})
            conn.execute(
                b"UPDATE clusters SET allocated_cpu_millis = %s, running_count = %s,"
                b" pending_count = %s WHERE id = %s",
                (RUNNING * 1000, RUNNING, PENDING, cluster_id),
            )
        _sql("ANALYZE deployments")  # what a long-lived database's statistics would say
    return cluster_id


async def _measure(cell: Cell, warmup: float, duration: float) -> Result:
    await cell.drive(warmup)  # fills the empty cluster, the pools and the statement caches
    if cell.setup == "empty":
        running = _sql("SELECT running_count FROM clusters WHERE id = %s", cell.cluster_id)
        if running != CAPACITY["empty"][0]:
            raise RuntimeError(f"warm-up left the empty cluster at {running} running; raise it")
    before = _sql(PREEMPTED_SQL, cell.cluster_id)
    latencies, elapsed = await cell.drive(duration)
    preemptions = _sql(PREEMPTED_SQL, cell.cluster_id) - before
    latencies.sort()  # nearest-rank percentiles
    p50, p99 = (latencies[max(0, math.ceil(q * len(latencies)) - 1)] * 1000 for q in (0.5, 0.99))
    return Result(cell.setup, cell.concurrency, len(latencies) / elapsed, p50, p99, preemptions)


def _check_invariants() -> list[str]:
    lines, broken = ["Invariant per cluster (allocated == sum(running) <= capacity):"], 0
    with psycopg.connect(BENCH_DSN) as conn:
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


def _report(results: list[Result], args: argparse.Namespace) -> str:
    uname = platform.uname()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{uname.system} {uname.release} {uname.machine}, nproc {os.cpu_count()}, {now}, "
        f"Python {platform.python_version()}; uvicorn --workers {args.workers}; PostgreSQL "
        f"127.0.0.1; {args.warmup:g} s warm-up (unmeasured; fills the empty cluster) + "
        f"{args.duration:g} s per cell; fresh cluster per cell",
        "",
        "| setup | concurrency | creations/s | p50 ms | p99 ms | preemptions |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.setup} | {r.concurrency} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
        f"| {r.preemptions} |"
        for r in results
    ]
    lines += ["", "| concurrency | backlog/empty creations/s |", "|---:|---:|"]
    by_key = {(r.setup, r.concurrency): r for r in results}
    for c in args.concurrency:
        lines.append(f"| {c} | {by_key['backlog', c].rps / by_key['empty', c].rps:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per cell")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    from app.db.migrations import upgrade_to_head  # imports alembic + models: only when running

    servers: list[subprocess.Popen[bytes]] = []
    drop = f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
    _sql(drop, dsn=ADMIN_DSN)  # leftovers of an aborted run
    _sql(f"CREATE DATABASE {DB_NAME}", dsn=ADMIN_DSN)
    try:
        upgrade_to_head(DB_URL)
        port = _serve(args.workers, servers)
        with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30) as client:
            credentials = {"username": "bench", "password": "bench-password-123"}
            register = {**credentials, "email": "bench@example.com"}
            user = client.post("/api/v1/auth/register", json=register).raise_for_status().json()
            client.post("/api/v1/auth/login", json=credentials).raise_for_status()
            org = client.post("/api/v1/organizations", json={"name": "Bench"}).raise_for_status()
            org_id, cookie = org.json()["id"], client.cookies["session"]

            async def run_all() -> list[Result]:
                results = []
                for setup in ("empty", "backlog"):
                    for c in args.concurrency:
                        cluster_id = _new_cluster(client, org_id, user["id"], setup, c)
                        cell = Cell(setup, c, cluster_id, port, cookie)
                        results.append(await _measure(cell, args.warmup, args.duration))
                        print(results[-1], file=sys.stderr, flush=True)
                return results

            report = _report(uvloop.run(run_all()), args)
        print(report + "\n\n" + "\n".join(_check_invariants()))
    finally:
        for proc in servers:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            proc.kill()  # a no-op once it has exited
        _sql(drop, dsn=ADMIN_DSN)


if __name__ == "__main__":
    main()
