# ruff: noqa: E402 - the sys.path fix below has to run before any import that reaches `http`.
"""DistilBERT predictions through the API (micro-batching on and off) against the raw model and a
per-request baseline; then 1,000 async mock predictions: acceptance, completion, peak memory.

Run by hand from the project root: `python bench/inference.py [--duration 10] [--skip-mock]`.
Bench-only tools, not project dependencies: `pip install flask gunicorn psutil`.

(a) A DistilBERT of full size (DistilBertConfig() defaults, random weights, a synthetic 30,522-entry
WordPiece vocabulary; inputs are 15-40 of its words) is saved to a temp dir: DISTILBERT_MODEL.
Contenders: DistilBertRuntime.predict_batch in this process (batch size = concurrency); the API
(uvicorn, one process, in-process worker, sync `POST /deployments/{id}/predict`) with
BATCH_MAX_SIZE=32 at each --waits BATCH_MAX_WAIT_MS, and with BATCH_MAX_SIZE=1; gunicorn, 1 sync
worker, one `pipeline("text-classification")` call per request (the Flask demo). All use --threads
torch intra-op threads (OMP_NUM_THREADS in the servers). The machine is shared and noisy: every
server runs at once (each API on its own database); per round and concurrency the contenders run
in turn (order flipped each round); the table keeps each cell's best round, the concurrency-32
ratios are per round (neighbours in time), and each cell shows the CPU that processes outside this
benchmark used meanwhile. The API runs in this file's --serve mode: uvicorn.run() with
DistilBertRuntime._predict wrapped to log each forward pass (batch size, seconds).
(b) 1,000 `Async-Mode: true` mock predictions (delays 10-17 s, the defaults) over 64 connections:
time to accept all, time until the database has all completed, RSS idle / peak (VmHWM), with the
worker in the API process, then in one `python -m app.cli worker` (WORKER_IN_PROCESS=false).
Databases mlops_bench_inference* on 127.0.0.1:5432, dropped at the end. Loopback only.
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
import json
import math
import os
import platform
import random
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import psycopg
import uvloop

HOST = "127.0.0.1"  # never anything but loopback
DB_NAME = "mlops_bench_inference"
DSN = f"postgresql://postgres@{HOST}:5432/"
CONCURRENCY, MOCK_TOTAL, MOCK_CONNECTIONS = (1, 8, 32), 1000, 64
RAW, BASELINE = "raw predict_batch (batch size)", "gunicorn 1 sync worker, pipeline/request"
SERVE = [sys.executable, str(Path(__file__).resolve()), "--serve", "{port}"]
UVICORN = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", "{port}"]
GUNICORN = [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "sync", "--no-control-socket"]
GUNICORN += ["-b", f"{HOST}:{{port}}"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'"]
Procs = list[subprocess.Popen[bytes]]
Targets = dict[str, tuple[int, Callable[[], bytes], Path | None]]  # name: port, requests, log


@dataclass
class Row:
    contender: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    elapsed: float
    other: float = 0.0  # cores used by processes outside this benchmark meanwhile
    note: str = ""


def build_model(directory: Path, rng: random.Random) -> list[str]:
    """Full-size DistilBERT with random weights, and its tokenizer; returns the whole words."""
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


def make_baseline() -> Any:
    """gunicorn's app factory (`bench.inference:make_baseline()`): the usual Flask demo."""
    import torch
    from flask import Flask, jsonify, request
    from transformers import pipeline

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    classifier = pipeline("text-classification", model=os.environ["DISTILBERT_MODEL"])
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Any:
        return jsonify(classifier(request.get_json()["input"])[0])

    return app


def serve_api(port: int) -> None:
    """uvicorn.run(app.main:app), each forward pass logged as `batch-size seconds`."""
    import uvicorn

    from app.runtimes.distilbert import DistilBertRuntime

    log = open(os.environ.get("BENCH_BATCH_LOG", os.devnull), "a", buffering=1)  # noqa: SIM115
    original = DistilBertRuntime._predict

    def logged(self: DistilBertRuntime, inputs: list[str]) -> list[dict[str, Any]]:
        start = time.perf_counter()
        outputs = original(self, inputs)
        log.write(f"{len(inputs)} {time.perf_counter() - start:.6f}\n")
        return outputs

    DistilBertRuntime._predict = logged  # type: ignore[method-assign]
    uvicorn.run("app.main:app", host=HOST, port=port, access_log=False, log_level="warning")


class Client:
    """One HTTP/1.1 connection; reopened when the server closes it (gunicorn sync workers do)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, raw: bytes, expect: int) -> None:
        if self.streams is None:
            self.streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self.streams
        writer.write(raw)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        body = await reader.readexactly(int(head.split(b"content-length:")[1].split(b"\r")[0]))
        if b"connection: close" in head:
            self.close()
        if int(head[9:12]) != expect:
            raise RuntimeError(f"{head[:12]!r} {body[:300]!r}")

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def requests(port: int, path: str, cookie: str, inputs: list[str]) -> Callable[[], bytes]:
    """A maker of `POST path {"input": <a random one of inputs>}` requests."""
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    head += f"Cookie: session={cookie}\r\n" if cookie else ""

    def make() -> bytes:
        body = json.dumps({"input": random.choice(inputs)}).encode()
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return make


def row(name: str, size: int, latencies: list[float], elapsed: float, per_call: int = 1) -> Row:
    ordered = sorted(latencies)  # nearest-rank percentiles
    p50, p99 = (ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000 for q in (0.5, 0.99))
    return Row(name, size, len(ordered) * per_call / elapsed, p50, p99, elapsed)


async def drive(port: int, make: Callable[[], bytes], concurrency: int, seconds: float) -> Row:
    """Closed loop: each connection sends its next request as soon as the last one answered."""
    clients, latencies = [Client(port) for _ in range(concurrency)], list[float]()
    start = time.perf_counter()

    async def loop(client: Client) -> None:
        while (sent := time.perf_counter()) < start + seconds:
            await client.send(make(), 200)
            latencies.append(time.perf_counter() - sent)

    try:
        await asyncio.gather(*(loop(client) for client in clients))
    finally:
        for client in clients:
            client.close()
    return row("", concurrency, latencies, time.perf_counter() - start)


async def raw_model(runtime: Any, inputs: list[str], batch: int, seconds: float) -> Row:
    """DistilBertRuntime.predict_batch (tokenizer, forward, softmax): the worker's code path."""
    await runtime.predict_batch(random.sample(inputs, batch))  # warm-up
    latencies, start = list[float](), time.perf_counter()
    while time.perf_counter() - start < seconds:
        sent = time.perf_counter()
        await runtime.predict_batch(random.sample(inputs, batch))
        latencies.append(time.perf_counter() - sent)
    return row(RAW, batch, latencies, time.perf_counter() - start, batch)


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of the machine, and of this benchmark: this process, its children (the
    servers), and the PostgreSQL backends serving its databases."""
    backends = sql(f"SELECT array_agg(pid) FROM pg_stat_activity WHERE datname LIKE '{DB_NAME}%'")
    pids = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    own = 0.0
    for pid in pids | set(backends or []):
        with contextlib.suppress(psutil.NoSuchProcess):
            own += sum(psutil.Process(pid).cpu_times()[:2])
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal, own


async def measured(cell: Awaitable[Row]) -> Row:
    machine, own = cpu_seconds()
    result = await cell
    machine_after, own_after = cpu_seconds()
    result.other = max(0.0, (machine_after - machine) - (own_after - own)) / result.elapsed
    return result


Round = dict[tuple[str, int], Row]  # (contender, concurrency) -> cell


async def bench_bert(args: argparse.Namespace, targets: Targets, inputs: list[str]) -> list[Round]:
    """Per round, per concurrency, every contender in turn (the order flips each round); the raw
    model runs in each block at batch size = concurrency, so that neighbours share the noise."""
    import torch

    from app.runtimes.distilbert import DistilBertRuntime

    torch.set_num_threads(args.threads)
    runtime = DistilBertRuntime(os.environ["DISTILBERT_MODEL"])
    await runtime.load()
    rounds: list[Round] = []
    for number in range(args.rounds):
        cells: Round = {}
        for concurrency in CONCURRENCY:
            for name in [RAW, *targets][:: -1 if number % 2 else 1]:
                if name == RAW:
                    cell = await measured(raw_model(runtime, inputs, concurrency, args.duration))
                    cells[name, concurrency] = cell
                    continue
                port, make, log = targets[name]
                await drive(port, make, concurrency, args.warmup)
                done = len(forwards(log))
                cell = await measured(drive(port, make, concurrency, args.duration))
                cell.contender, passes = name, forwards(log)[done:]
                if passes:
                    mean = sum(n for n, _ in passes) / len(passes)
                    busy = sum(s for _, s in passes) / cell.elapsed
                    cell.note = f"{len(passes)}, mean batch {mean:.1f}, model busy {busy:.0%}"
                cells[name, concurrency] = cell
                print(cell, file=sys.stderr, flush=True)
        rounds.append(cells)
    await runtime.unload()
    return rounds


def forwards(log: Path | None) -> list[tuple[int, float]]:
    lines = log.read_text().splitlines() if log is not None and log.exists() else []
    return [(int(size), float(seconds)) for size, seconds in (line.split() for line in lines)]


async def mock_run(
    port: int, cookie: str, deployment: str
) -> tuple[float, float, tuple[float, float]]:
    """Seconds until all are accepted (202), and until the database has all completed; and
    cpu_seconds() once all were accepted."""
    make = requests(port, f"/api/v1/deployments/{deployment}/predict", cookie, ["hello"])
    raw = make().replace(b"\r\n\r\n", b"\r\nAsync-Mode: true\r\n\r\n", 1)
    left, start = [MOCK_TOTAL], time.perf_counter()

    async def fire(client: Client) -> None:
        while left[0] > 0:
            left[0] -= 1
            await client.send(raw, 202)
        client.close()

    await asyncio.gather(*(fire(Client(port)) for _ in range(MOCK_CONNECTIONS)))
    accepted, cpu = time.perf_counter() - start, cpu_seconds()
    count = b"SELECT count(*) FROM predictions WHERE deployment_id = %s AND status = 'completed'"
    async with await psycopg.AsyncConnection.connect(DSN + DB_NAME, autocommit=True) as conn:
        while (await (await conn.execute(count, (deployment,))).fetchone() or (0,))[0] < MOCK_TOTAL:
            if time.perf_counter() - start > 120:
                raise RuntimeError("not all mock predictions completed within 120 s")
            await asyncio.sleep(0.05)
    return accepted, time.perf_counter() - start, cpu


def sql(statement: str, database: str = "postgres") -> Any:
    """One autocommit statement (fixed text built here, never user input): its first value."""
    with psycopg.connect(DSN + database, autocommit=True) as conn:
        cursor = conn.execute(statement.encode())
        return (cursor.fetchone() or (None,))[0] if cursor.description else None


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment less MOCK_DELAY_* (the defaults are measured), plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCK_DELAY")} | extra


def start(command: list[str], env: dict[str, str], procs: Procs) -> int:
    """Starts `command` with its {port}; returns the port once it accepts connections."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = int(sock.getsockname()[1])
    command = [part.format(port=port) for part in command]
    procs.append(subprocess.Popen(command, cwd=ROOT, env=environment(env)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and procs[-1].poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return port
        time.sleep(0.2)
    raise RuntimeError(f"{command[:4]} did not start listening (exit {procs[-1].poll()})")


def stop(procs: Procs) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    procs.clear()


def memory_mib(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB, from /proc/<pid>/status."""
    lines = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
    kib = {line.split(":")[0]: int(line.split()[1]) for line in lines if line.startswith("Vm")}
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def set_up(port: int, model: str) -> tuple[str, str]:
    """A new user, organization, cluster and running deployment: (session cookie, its id)."""
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as client:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        credentials = {"username": name, "password": "bench-password-123"}
        register = {**credentials, "email": f"{name}@example.com"}
        client.post("/api/v1/auth/register", json=register).raise_for_status()
        client.post("/api/v1/auth/login", json=credentials).raise_for_status()
        org = client.post("/api/v1/organizations", json={"name": name}).raise_for_status().json()
        cluster = client.post(
            f"/api/v1/organizations/{org['id']}/clusters",
            json={"name": name, "resources": {"cpu": 4, "ram_gb": 16, "gpu": 0}},
        ).raise_for_status()
        created = client.post(
            f"/api/v1/clusters/{cluster.json()['id']}/deployments",
            json={"name": name, "model": model, "resources": {"cpu": 1, "ram_gb": 1, "gpu": 0}},
        ).raise_for_status()
        assert created.json()["status"] == "running", created.json()
        return client.cookies["session"], created.json()["id"]


def contenders(
    configs: list[tuple[str, str, str]], tmp: Path, procs: Procs
) -> tuple[Targets, list[str]]:
    """Builds the model, starts every server (each API on its own database): targets, inputs."""
    rng = random.Random(0)
    (tmp / "model").mkdir()
    words = build_model(tmp / "model", rng)
    inputs = [" ".join(rng.choices(words, k=rng.randint(15, 40))) + "." for _ in range(2000)]
    targets: Targets = {}
    for i, (name, size, wait) in enumerate(configs, 1):
        env = {"DATABASE_URL": f"{DSN}{DB_NAME}_{i}"}  # the app reads it as psycopg 3
        env |= {"BATCH_MAX_SIZE": size, "BATCH_MAX_WAIT_MS": wait}
        port = start(SERVE, env | {"BENCH_BATCH_LOG": str(tmp / f"{i}.log")}, procs)
        cookie, deployment = set_up(port, "distilbert-sst2")
        path = f"/api/v1/deployments/{deployment}/predict"
        targets[name] = (port, requests(port, path, cookie, inputs), tmp / f"{i}.log")
    port = start([*GUNICORN, "bench.inference:make_baseline()"], {}, procs)
    targets[BASELINE] = (port, requests(port, "/predict", "", inputs), None)
    return targets, inputs


def bench_mock(in_process: bool, procs: Procs) -> str:
    """One table line: acceptance, completion, memory of the API (and the separate worker)."""
    env = {"DATABASE_URL": DSN + DB_NAME, "WORKER_IN_PROCESS": str(in_process).lower()}
    if not in_process:  # procs[0] is the worker, procs[1] the API
        worker = [sys.executable, "-m", "app.cli", "worker"]
        procs.append(subprocess.Popen(worker, cwd=ROOT, env=environment(env)))
    port = start([*UVICORN, "--no-access-log", "--log-level", "warning"], env, procs)
    cookie, deployment = set_up(port, "mock")
    listening = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB_NAME}'"
    while sql(listening + " AND query LIKE 'LISTEN%'") < len(procs):  # every notifier listens
        time.sleep(0.2)
    idle, api = [memory_mib(proc)[0] for proc in procs], psutil.Process(procs[-1].pid)
    cpu, (machine, own) = sum(api.cpu_times()[:2]), cpu_seconds()
    accepted, done, (machine_after, own_after) = uvloop.run(mock_run(port, cookie, deployment))
    other = ((machine_after - machine) - (own_after - own)) / accepted
    cpu_ms = (sum(api.cpu_times()[:2]) - cpu) * 1000 / MOCK_TOTAL
    mib = [f"{rss:.0f} / {memory_mib(p)[1]:.0f}" for rss, p in zip(idle, procs, strict=True)]
    memory = f"{mib[0]} | -" if in_process else f"{mib[1]} | {mib[0]}"
    stop(procs)
    where = "in the API process" if in_process else "separate process"
    return f"| {where} | {accepted:.2f} | {other:.2f} | {done:.2f} | {cpu_ms:.1f} | {memory} |"


def report(args: argparse.Namespace, rounds: list[Round], mock: list[str]) -> None:
    import torch

    uname, now = platform.uname(), dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{uname.system} {uname.release} {uname.machine}, nproc {os.cpu_count()}, {now}, Python "
        f"{platform.python_version()}, torch {torch.__version__}, {args.threads} torch threads "
        f"in every contender; {args.warmup:g} s warm-up + {args.duration:g} s per cell; per cell "
        f"the best of {args.rounds} round(s)\n\n| contender | concurrency | sentences/s | p50 ms "
        "| p99 ms | other load (cores) | forward passes |\n|---|---:|---:|---:|---:|---:|---|"
    )
    best: Round = {}
    for key, cell in (item for cells in rounds for item in cells.items()):
        best[key] = max(best.get(key, cell), cell, key=lambda r: r.rps)
    for r in sorted(best.values(), key=lambda r: (r.contender, r.concurrency)):
        values = f"{r.rps:.1f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.other:.2f}"
        print(f"| {r.contender} | {r.concurrency} | {values} | {r.note} |")
    if rounds:
        batched = [
            r for r in best.values() if r.contender.startswith("API b") and r.concurrency == 32
        ]
        top = max(batched, key=lambda r: r.rps).contender
        print(f"\nConcurrency 32, {top} vs its neighbours in the same round (aims: >= 3x, >= 80%):")
        for number, cells in enumerate(rounds, 1):
            api, base, raw = (cells[name, 32] for name in (top, BASELINE, RAW))
            others = "/".join(f"{r.other:.1f}" for r in (api, base, raw))
            print(
                f"- round {number}: {api.rps / base.rps:.2f}x the per-request baseline, "
                f"{api.rps / raw.rps:.0%} of raw batch 32 (other load {others} cores)"
            )
    if mock:
        print(f"\n{MOCK_TOTAL} async mock predictions, {MOCK_CONNECTIONS} connections, 10-17 s\n")
        print("| worker | accept all s | other load (cores) | all completed s ", end="")
        print("| API CPU ms/accept | API RSS idle / peak MiB | worker RSS idle / peak MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print("\n".join(mock))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds discarded per cell")
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of every cell")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, every contender")
    parser.add_argument("--waits", type=float, nargs="+", default=[2, 5, 10], help="batch wait ms")
    parser.add_argument("--skip-mock", action="store_true")
    parser.add_argument("--skip-bert", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the API server mode
    args = parser.parse_args()
    if args.serve:
        serve_api(args.serve)
        return

    from app.db.migrations import upgrade_to_head  # imports alembic + models: only when running

    configs = [(f"API batch 32, wait {w:g} ms", "32", f"{w:g}") for w in args.waits]
    configs.append(("API no batching", "1", "0"))
    databases = [DB_NAME] + [f"{DB_NAME}_{i}" for i in range(1, len(configs) + 1)]
    procs: Procs = []
    rounds, mock = list[Round](), list[str]()
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        os.environ.update(
            RATE_LIMIT_ENABLED="false", SECRET_KEY="bench", LOG_LEVEL="WARNING",
            DISTILBERT_MODEL=str(Path(tmp) / "model"), OMP_NUM_THREADS=str(args.threads),
        )  # fmt: skip
        try:
            for name in databases:
                sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # an aborted run's
                sql(f"CREATE DATABASE {name}")
                upgrade_to_head(DSN + name)
            if not args.skip_bert:
                targets, inputs = contenders(configs, Path(tmp), procs)
                rounds = uvloop.run(bench_bert(args, targets, inputs))
                stop(procs)
            for _ in range(0 if args.skip_mock else args.rounds):
                mock += [bench_mock(in_process, procs) for in_process in (True, False)]
        finally:
            stop(procs)
            for name in databases:
                sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    report(args, rounds, mock)


if __name__ == "__main__":
    main()
