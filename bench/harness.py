"""What every benchmark in bench/ shares: databases, server processes, accounts, the load generator,
latency statistics, CPU and memory readings, the report's table and machine line, the test model.

Run a benchmark from the project root as a module, e.g. `python -m bench.request_path`: the project
root is then the first entry of sys.path, and both `app` and `bench` import from it. Servers run as
subprocesses in the project root, on 127.0.0.1 only. Databases go to the PostgreSQL server of the
admin URL (BENCH_POSTGRES_ADMIN_URL, by default postgresql://postgres@127.0.0.1:5432/postgres, as in
tests/support/databases.py); only names that start with `mlops_bench_` are created and dropped.

httpx and psycopg are imported where they are used, so that a measuring process that needs neither
(bench.model_costs --child) starts as small as the interpreter, psutil and the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import importlib.util
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psutil

if TYPE_CHECKING:
    import httpx
    import psycopg

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # every server a benchmark starts listens here, and only here
ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_PREFIX = "mlops_bench_"
PASSWORD = "bench-password-123"
T = TypeVar("T")


# --- PostgreSQL ---


def database_url(name: str) -> str:
    """The URL of database `name` beside the admin database (the app reads it as psycopg 3)."""
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def connect(database: str | None = None, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A psycopg connection to `database`, or to the admin database. Without autocommit, leaving
    its `with` block commits everything executed in it as one transaction."""
    import psycopg

    return psycopg.connect(database_url(database) if database else ADMIN_URL, autocommit=autocommit)


def sql(statement: str, *params: object, database: str | None = None) -> Any:
    """One autocommit statement (fixed text written in a benchmark, never user input) on
    `database`, or on the admin database: the first value of its first row, or None."""
    with connect(database) as conn:
        cursor = conn.execute(statement.encode(), params or None)
        row = cursor.fetchone() if cursor.description else None
    return None if row is None else row[0]


def _drop(name: str) -> None:
    from psycopg import sql as composed

    if not name.startswith(DATABASE_PREFIX):
        raise ValueError(f"{name!r}: benchmarks create and drop only {DATABASE_PREFIX}* databases")
    with connect() as conn:
        drop = composed.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(composed.Identifier(name)))


@contextlib.contextmanager
def databases(*names: str, migrate: bool = True) -> Iterator[list[str]]:
    """Fresh databases migrated to the latest schema (left empty with `migrate=False`, for a
    server that migrates them itself; an aborted run's leftovers dropped first), dropped again on
    exit even if they are still in use: their URLs."""
    from psycopg import sql as composed

    from app.db.migrations import upgrade_to_head  # alembic and the models: only when running

    try:
        for name in names:
            _drop(name)
            with connect() as conn:
                conn.execute(composed.SQL("CREATE DATABASE {}").format(composed.Identifier(name)))
            if migrate:
                upgrade_to_head(database_url(name))
        yield [database_url(name) for name in names]
    finally:
        for name in names:
            _drop(name)


def postgres_backends(database_prefix: str) -> set[int]:
    """Process ids of the PostgreSQL backends connected to the databases named `prefix*`."""
    query = "SELECT array_agg(pid) FROM pg_stat_activity WHERE starts_with(datname, %s)"
    return set(sql(query, database_prefix) or [])


# --- Server processes ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def module_command(module: str, *args: str) -> list[str]:
    """`python -m module args`, run in the project root by Servers: nothing to add to sys.path."""
    return [sys.executable, "-m", module, *args]


def uvicorn_command(target: str, port: int, workers: int = 1) -> list[str]:
    """The same uvicorn settings for every server: the ASGI app `target`, no access log."""
    options = ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return module_command("uvicorn", target, "--host", HOST, "--port", str(port), *options)


def side_by_side_options(doc: str) -> argparse.Namespace:
    """`--duration` and `--rounds` of the benchmarks that compare runs made side by side
    (`side_by_side`), described by the first line of the module's docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    return parser.parse_args()


def side_by_side(rounds: int, runs: Mapping[str, Callable[[], float]]) -> dict[str, float]:
    """The median of each run's rate over `rounds` rounds, each round running every run once, in
    order: the machine is shared, so only runs made side by side compare."""
    rates: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            rates[label].append(run())
    return {label: statistics.median(values) for label, values in rates.items()}


def app_env(database: str, **extra: str) -> dict[str, str]:
    """The app's settings in every benchmark: its database, no rate limits, quiet logs."""
    settings = {"RATE_LIMIT_ENABLED": "false", "SECRET_KEY": "bench-secret", "LOG_LEVEL": "WARNING"}
    return {"DATABASE_URL": database, **settings, **extra}


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment less MOCK_DELAY_* (benchmarks measure the defaults), plus
    `extra`: what every process a benchmark starts gets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCK_DELAY")} | dict(extra)


class Servers:
    """The processes a benchmark starts; on leaving the `with` block all are stopped (SIGTERM,
    SIGKILL after a grace period), whatever happened inside it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def spawn(
        self, command: list[str], env: Mapping[str, str], cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        """Starts `command` in `cwd` (the project root, or another checkout of it) with
        environment(env); does not wait."""
        proc = subprocess.Popen(command, cwd=cwd, env=environment(env))
        self.procs.append(proc)
        return proc

    def start(
        self,
        command: Callable[[int], list[str]],
        env: Mapping[str, str],
        *,
        ready: str | None = "/ready",
        timeout: float = 120.0,
        cwd: Path = ROOT,
    ) -> int:
        """Starts the server `command(port)` on a free port; returns the port once `GET ready`
        answers 200, or, where `ready` is None, once the port accepts connections."""
        port = free_port()
        proc = self.spawn(command(port), env, cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            if _answers(port, ready):
                return port
            time.sleep(0.2)
        raise RuntimeError(f"{proc.args!r} was not ready on port {port} within {timeout:g} s")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _answers(port: int, path: str | None) -> bool:
    import httpx

    if path is None:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return True
        return False
    try:
        return httpx.get(f"http://{HOST}:{port}{path}", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- Accounts on a running API ---


@dataclass
class Account:
    """A user signed up and logged in on a running API; `client` carries the session cookie."""

    client: httpx.Client
    user_id: str

    @property
    def cookie(self) -> str:
        return str(self.client.cookies["session"])

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/v1{path}` (any answer but 2xx raises): the JSON body of the answer."""
        answer: dict[str, Any] = (
            self.client.post(f"/api/v1{path}", json=body).raise_for_status().json()
        )
        return answer

    def organization(self, name: str) -> str:
        return str(self.post("/organizations", {"name": name})["id"])

    def cluster(self, organization: str, name: str, cpu: int, ram_gb: int, gpu: int) -> str:
        resources = {"cpu": cpu, "ram_gb": ram_gb, "gpu": gpu}
        body = {"name": name, "resources": resources}
        return str(self.post(f"/organizations/{organization}/clusters", body)["id"])

    def deployment(
        self, cluster: str, name: str, model: str, cpu: int = 1, ram_gb: int = 0, gpu: int = 0
    ) -> dict[str, Any]:
        resources = {"cpu": cpu, "ram_gb": ram_gb, "gpu": gpu}
        body = {"name": name, "model": model, "resources": resources}
        return self.post(f"/clusters/{cluster}/deployments", body)


@contextlib.contextmanager
def signed_up(port: int, username: str = "bench") -> Iterator[Account]:
    """A new user on the API at `port`, registered and logged in, for the `with` block."""
    import httpx

    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as client:
        credentials = {"username": username, "password": PASSWORD}
        register = {**credentials, "email": f"{username}@example.com"}
        user = client.post("/api/v1/auth/register", json=register).raise_for_status().json()
        client.post("/api/v1/auth/login", json=credentials).raise_for_status()
        yield Account(client, str(user["id"]))


def request(
    method: str, path: str, port: int, *, cookie: str = "", body: bytes | None = None
) -> bytes:
    """One raw HTTP/1.1 request (keep-alive); a body goes as JSON."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    head += f"Cookie: session={cookie}\r\n" if cookie else ""
    if body is None:
        return f"{head}\r\n".encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return f"{head}\r\n".encode() + body


# --- The load generator: raw asyncio protocol, so that the client costs little of the CPUs ---


class _Protocol(asyncio.Protocol):
    """The socket's side of a Connection: answers with a Content-Length, one at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:head_end]).lower()
        _, found, rest = head.partition(b"\r\ncontent-length:")
        if not found:  # every server measured here sends Content-Length for its JSON bodies
            self.waiter.set_exception(RuntimeError(f"no Content-Length in {head!r}"))
            return
        end = head_end + 4 + int(rest.split(b"\r\n", 1)[0])
        if len(self.buffer) >= end:
            body = bytes(self.buffer[head_end + 4 : end])
            del self.buffer[:end]
            self.waiter.set_result((int(head[9:12]), body, b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))


class Connection:
    """One HTTP/1.1 keep-alive connection carrying one request at a time; reopened when the server
    closes it (gunicorn's sync workers answer every request with `Connection: close`)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._protocol: _Protocol | None = None

    async def open(self) -> None:
        if self._protocol is None or self._protocol.closed:
            loop = asyncio.get_running_loop()
            self._protocol = (await loop.create_connection(_Protocol, HOST, self.port))[1]

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Sends `raw`; the answer's status and body."""
        await self.open()
        protocol = cast(_Protocol, self._protocol)
        assert protocol.transport is not None
        protocol.waiter = asyncio.get_running_loop().create_future()
        protocol.transport.write(raw)
        status, body, close = await protocol.waiter
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


@dataclass
class Sample:
    """What a closed loop measured: each call's latency (seconds) and the time it all took."""

    latencies: list[float]
    elapsed: float
    per_call: int = 1  # items per call: sentences per batch

    @property
    def rate(self) -> float:
        """Items (requests, sentences) per second."""
        return len(self.latencies) * self.per_call / self.elapsed

    @functools.cached_property
    def _ordered(self) -> list[float]:
        return sorted(self.latencies)

    def ms(self, q: float) -> float:
        """The q-quantile of the latencies in milliseconds (nearest rank)."""
        return percentile(self._ordered, q) * 1000


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank q-quantile of values sorted in ascending order."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def drive(
    port: int, make: Callable[[], bytes], concurrency: int, seconds: float, expect: int = 200
) -> Sample:
    """Closed loop: `concurrency` connections, each sending its next request (`make()`) as soon as
    the last one was answered, until `seconds` have passed; any status but `expect` stops it."""
    connections = [Connection(port) for _ in range(concurrency)]
    latencies: list[float] = []
    try:
        for connection in connections:  # opened before the clock starts
            await connection.open()
        start = time.perf_counter()
        deadline = start + seconds

        async def loop(connection: Connection) -> None:
            while time.perf_counter() < deadline:
                raw = make()
                sent = time.perf_counter()
                status, body = await connection.request(raw)
                latencies.append(time.perf_counter() - sent)
                if status != expect:
                    raise RuntimeError(f"{status} (expected {expect}): {body[:300]!r}")

        await asyncio.gather(*(loop(connection) for connection in connections))
        return Sample(latencies, time.perf_counter() - start)
    finally:
        for connection in connections:
            connection.close()


async def count_through(
    port: int, raw: bytes, total: int, connections: int, expect: int = 202
) -> float:
    """`total` requests `raw` shared by `connections` keep-alive connections, each answered
    `expect` (any other status raises): the seconds until the last was answered."""
    left, start = [total], time.perf_counter()

    async def send(connection: Connection) -> None:
        try:
            while left[0] > 0:
                left[0] -= 1
                status, body = await connection.request(raw)
                if status != expect:
                    raise RuntimeError(f"{status} (expected {expect}): {body[:300]!r}")
        finally:
            connection.close()

    await asyncio.gather(*(send(Connection(port)) for _ in range(connections)))
    return time.perf_counter() - start


async def repeat(
    call: Callable[[], Awaitable[object]],
    seconds: float,
    *,
    min_calls: int = 1,
    per_call: int = 1,
) -> Sample:
    """`call()` back to back for at least `seconds` and `min_calls` calls: the in-process
    counterpart of drive(). Warm up before: every call here is measured."""
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(latencies) < min_calls:
        sent = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - sent)
    return Sample(latencies, time.perf_counter() - start, per_call)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs a load generator on uvloop (a uvicorn[standard] dependency): a small client share."""
    import uvloop

    return uvloop.run(main)


# --- CPU and memory of processes ---


def family(pid: int) -> set[int]:
    """A process and all its descendants (uvicorn's workers, say)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        return {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    return set()


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds so far (user + system): of the whole machine, and of each process of each
    named group."""

    machine: float
    groups: dict[str, dict[int, float]]


def cpu_reading(**groups: Iterable[int]) -> CpuReading:
    """A CpuReading of the named groups of processes (those that have exited are left out)."""
    t = psutil.cpu_times()
    seconds: dict[str, dict[int, float]] = {}
    for name, pids in groups.items():
        seconds[name] = {}
        for pid in set(pids):
            with contextlib.suppress(psutil.NoSuchProcess):
                seconds[name][pid] = sum(psutil.Process(pid).cpu_times()[:2])
    return CpuReading(t.user + t.nice + t.system + t.irq + t.softirq + t.steal, seconds)


def cores(before: CpuReading, after: CpuReading, elapsed: float) -> dict[str, float]:
    """Cores each group used between two readings, from its processes at the second one (all
    the time of one that started in between); one that exited in between is left out, so a group
    whose processes come and go (pooled connections' backends) reads a little low. `other`: the
    rest of the machine (the shared machine's other work). The groups must not overlap."""
    used = {
        name: sum(t - before.groups[name].get(pid, 0.0) for pid, t in pids.items()) / elapsed
        for name, pids in after.groups.items()
    }
    machine = (after.machine - before.machine) / elapsed
    return used | {"other": max(0.0, machine - sum(used.values()))}


def memory_mib(pid: int | None = None) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, this one by default, in MiB, from /proc/<pid>/status (NaN
    where there is no such file: not Linux)."""
    try:
        lines = Path(f"/proc/{pid or 'self'}/status").read_text().splitlines()
    except OSError:
        return math.nan, math.nan
    kib = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.startswith("Vm")}
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


# --- Reports ---


def machine_line() -> str:
    """The machine, the time and the interpreter, for the first line of a report."""
    uname = platform.uname()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{uname.system} {uname.release} {uname.machine}, nproc {os.cpu_count()}, {now}, "
        f"Python {platform.python_version()}"
    )


def server_stack() -> str:
    """What uvicorn runs on here: its event loop and HTTP parser."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {parser}"


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A markdown table; `align` has an `l` or `r` per column (default: the first column left,
    the others right)."""
    align = align or "l" + "r" * (len(columns) - 1)
    rule = "|".join("---" if a == "l" else "---:" for a in align)
    lines = ["| " + " | ".join(columns) + " |", f"|{rule}|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- The DistilBERT the ML benchmarks serve: full size, random weights, no download ---

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'"]


def build_distilbert(directory: Path, rng: random.Random) -> list[str]:
    """Saves a DistilBERT of full distilbert-base size (DistilBertConfig() defaults, random weights)
    and its tokenizer, a synthetic 30,522-entry WordPiece vocabulary, to `directory`; returns the
    vocabulary's whole words."""
    import torch
    import transformers as tf

    config = tf.DistilBertConfig(id2label={0: "NEGATIVE", 1: "POSITIVE"})
    letters, words, pieces = "abcdefghijklmnopqrstuvwxyz", set[str](), set[str]()
    while len(words) < 24_000:
        words.add("".join(rng.choices(letters, k=rng.randint(2, 10))))
    while len(SPECIALS) + len(words) + len(pieces) < config.vocab_size:
        pieces.add("##" + "".join(rng.choices(letters, k=rng.randint(1, 4))))
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join([*SPECIALS, *sorted(words), *sorted(pieces)]) + "\n")
    torch.manual_seed(0)
    tf.DistilBertForSequenceClassification(config).save_pretrained(directory)
    # The vocabulary goes positionally (transformers 5 ignores `vocab_file=`), as in tests/.
    tf.DistilBertTokenizer(str(vocab), model_max_length=512).save_pretrained(directory)
    return sorted(words)


def sentences(words: Sequence[str], rng: random.Random, count: int = 2000) -> list[str]:
    """`count` inputs of 15-40 random `words` each."""
    return [" ".join(rng.choices(words, k=rng.randint(15, 40))) + "." for _ in range(count)]
