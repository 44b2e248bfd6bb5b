# ruff: noqa: E402 - the sys.path fix below has to run before any import that reaches `http`.
"""Authenticated `GET /api/v1/auth/me` against a bare Starlette endpoint doing one indexed query.

Run by hand from the project root (not part of the tests): `python bench/http.py [--duration 10]`.
It creates the database `mlops_bench_http` on 127.0.0.1:5432, serves the real app and the bare app
with uvicorn (1 worker each, same defaults) in subprocesses, drives both from this process with a
closed-loop keep-alive client, prints a markdown table, then stops the servers and drops the
database. Loopback only.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, and this file would then shadow the
# standard library's `http` package, which httpx and uvicorn import.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import math
import os
import platform
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import httpx
import psycopg
import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db.session import create_engine

HOST = "127.0.0.1"  # never anything but loopback
DB_NAME = "mlops_bench_http"
ADMIN_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
DB_URL = f"postgresql+psycopg://postgres@{HOST}:5432/{DB_NAME}"
USER_QUERY = text("SELECT id, username, email, created_at FROM users WHERE id = :id")


# --- The bare endpoint: what one indexed query costs without the app's stack around it. ---


@contextlib.asynccontextmanager
async def _bare_lifespan(app: Starlette) -> AsyncIterator[None]:
    # The app's own engine factory: same driver (psycopg 3 async) and pool settings as the app.
    app.state.engine = create_engine(os.environ.get("BENCH_DATABASE_URL", DB_URL))
    yield
    await app.state.engine.dispose()


async def _bare_user(request: Request) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        row = (await conn.execute(USER_QUERY, {"id": request.path_params["user_id"]})).one()
    body = {**row._mapping, "id": str(row.id), "created_at": row.created_at.isoformat()}
    return JSONResponse(body)


bare_app = Starlette(routes=[Route("/users/{user_id:uuid}", _bare_user)], lifespan=_bare_lifespan)


# --- Load generator: raw asyncio protocol, so the client costs little of the shared CPUs. ---


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:head_end]).lower()
        _, found, rest = head.partition(b"\r\ncontent-length:")
        if not found:  # both servers send Content-Length for these small JSON bodies
            self.waiter.set_exception(RuntimeError(f"no Content-Length in {head!r}"))
            return
        end = head_end + 4 + int(rest.split(b"\r\n", 1)[0])
        if len(self.buffer) >= end:
            del self.buffer[:end]
            self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("server closed the connection"))

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


@dataclass
class Result:
    target: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float


async def _drive(
    port: int, raw: bytes, concurrency: int, seconds: float
) -> tuple[list[float], float]:
    """Closed loop: each connection sends its next request as soon as the last one answered."""
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, HOST, port))[1] for _ in range(concurrency)]
    latencies: list[float] = []
    failures: list[int] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(conn: _Connection) -> None:
        while (sent := time.perf_counter()) < deadline:
            status = await conn.request(raw)
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                failures.append(status)

    await asyncio.gather(*(worker(conn) for conn in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    if failures:
        raise RuntimeError(f"{len(failures)} non-200 responses, e.g. {sorted(set(failures))}")
    return latencies, elapsed


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


async def measure(
    target: str, port: int, raw: bytes, concurrency: int, warmup: float, duration: float
) -> Result:
    # Warm-up fills the connection pool, SQLAlchemy's compiled cache and psycopg's prepared
    # statements, none of which a long-running server pays per request.
    await _drive(port, raw, concurrency, warmup)
    latencies, elapsed = await _drive(port, raw, concurrency, duration)
    latencies.sort()
    p50, p99 = (_percentile(latencies, q) * 1000 for q in (0.50, 0.99))
    return Result(target, concurrency, len(latencies) / elapsed, p50, p99)


# --- Orchestration: database, servers, setup, report. ---


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.encode())  # fixed statements built here, never user input


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _serve(target: str, env: dict[str, str], servers: list[subprocess.Popen[bytes]]) -> int:
    """Both servers get identical uvicorn settings; returns the port once it accepts connections."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", target, "--host", HOST, "--port", str(port)]
    command += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    servers.append(proc)  # before waiting, so that the caller's cleanup always sees it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return port
        time.sleep(0.1)
    raise RuntimeError(f"{target} did not start listening on {port}")


def _sign_up(port: int) -> tuple[str, str]:
    """A user with two organizations, so /me returns a realistic body: (user id, session cookie)."""
    with httpx.Client(base_url=f"http://{HOST}:{port}") as client:
        credentials = {"username": "bench", "password": "bench-password-123"}
        register = {**credentials, "email": "bench@example.com"}
        client.post("/api/v1/auth/register", json=register).raise_for_status()
        client.post("/api/v1/auth/login", json=credentials).raise_for_status()
        for name in ("Bench Org A", "Bench Org B"):
            client.post("/api/v1/organizations", json={"name": name}).raise_for_status()
        me = client.get("/api/v1/auth/me").raise_for_status().json()
        assert len(me["organizations"]) == 2, me
        return me["id"], client.cookies["session"]


def _get(path: str, port: int, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{headers}\r\n".encode()


def _report(results: list[Result], duration: float) -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uname = platform.uname()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{uname.system} {uname.release} {uname.machine}, nproc {os.cpu_count()}, {now}, "
        f"Python {platform.python_version()}; uvicorn 1 worker, {loop} + {http}; "
        f"{duration:g} s per cell; client: this process, raw asyncio sockets",
        "",
        "| target | concurrency | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.target} | {r.concurrency} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |"
        for r in results
    ]
    lines += ["", "| concurrency | me/bare req/s |", "|---:|---:|"]
    by_key = {(r.target, r.concurrency): r for r in results}
    for concurrency in sorted({r.concurrency for r in results}):
        ratio = by_key["me", concurrency].rps / by_key["bare", concurrency].rps
        lines.append(f"| {concurrency} | {ratio:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    from app.db.migrations import upgrade_to_head  # imports alembic + models: only when running

    servers: list[subprocess.Popen[bytes]] = []
    _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")  # leftovers of an aborted run
    _admin(f"CREATE DATABASE {DB_NAME}")
    try:
        upgrade_to_head(DB_URL)
        app_env = {
            "DATABASE_URL": DB_URL,
            "RATE_LIMIT_ENABLED": "false",
            "SECRET_KEY": "bench-secret",
            "LOG_LEVEL": "WARNING",
        }
        app_port = _serve("app.main:app", app_env, servers)
        bare_port = _serve("bench.http:bare_app", {"BENCH_DATABASE_URL": DB_URL}, servers)

        user_id, cookie = _sign_up(app_port)
        uuid.UUID(user_id)  # it goes into a request line verbatim
        targets = {
            "bare": (bare_port, _get(f"/users/{user_id}", bare_port)),
            "me": (app_port, _get("/api/v1/auth/me", app_port, f"Cookie: session={cookie}\r\n")),
        }

        async def run_all() -> list[Result]:
            return [
                await measure(name, port, raw, concurrency, args.warmup, args.duration)
                for concurrency in args.concurrency
                for name, (port, raw) in targets.items()
            ]

        # uvloop (a uvicorn[standard] dependency) keeps the client's share of the CPUs small.
        print(_report(uvloop.run(run_all()), args.duration))
    finally:
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        _admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
