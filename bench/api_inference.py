"""Inference through the API: DistilBERT predictions (micro-batching on and off) against the raw
model and a per-request server; then 1,000 async mock predictions: acceptance, completion, memory.

Run from the project root: `python -m bench.api_inference [--duration 10] [--rounds 3]
[--skip-mock]`. Needs the `ml` and `bench` extras (`pip install -e '.[bench,ml]'`).

(a) A DistilBERT of full size (the harness's build_distilbert: random weights, a synthetic
30,522-entry WordPiece vocabulary; inputs are 15-40 of its words) is saved to a temp dir:
DISTILBERT_MODEL. Contenders: DistilBertRuntime.predict_batch in this process (batch size =
concurrency); the API (uvicorn, one process, in-process worker, sync `POST
/deployments/{id}/predict`) with BATCH_MAX_SIZE=32 at each --waits BATCH_MAX_WAIT_MS, and with
BATCH_MAX_SIZE=1; gunicorn, 1 sync worker, one `pipeline("text-classification")` call per request
(the Flask demo). All use --threads torch intra-op threads (OMP_NUM_THREADS in the servers). The
machine is shared and noisy: every server runs at once (each API on its own database); per round and
concurrency the contenders run in turn (order flipped each round); the table keeps each cell's best
round, the concurrency-32 ratios are per round (neighbours in time), and each cell shows the CPU
that processes outside this benchmark used meanwhile. The API runs in this module's --serve mode:
uvicorn.run() with DistilBertRuntime._predict wrapped to log each forward pass (batch size,
seconds).
(b) 1,000 `Async-Mode: true` mock predictions (delays 10-17 s, the defaults) over 64 connections:
time to accept all, time until the database has all completed, RSS idle / peak (VmHWM), with the
worker in the API process, then in one `python -m app.cli worker` (WORKER_IN_PROCESS=false).
Databases mlops_bench_api_inference*, dropped at the end.
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    HOST,
    CpuReading,
    Sample,
    Servers,
    app_env,
    build_distilbert,
    cores,
    count_through,
    cpu_reading,
    database_url,
    databases,
    drive,
    family,
    machine_line,
    memory_mib,
    module_command,
    postgres_backends,
    repeat,
    request,
    run,
    sentences,
    signed_up,
    sql,
    table,
    uvicorn_command,
)

DB_NAME = "mlops_bench_api_inference"
CONCURRENCY, MOCK_TOTAL, MOCK_CONNECTIONS = (1, 8, 32), 1000, 64
RAW, BASELINE = "raw predict_batch (batch size)", "gunicorn 1 sync worker, pipeline/request"
Targets = dict[str, tuple[int, Callable[[], bytes], Path | None]]  # name: port, requests, log


@dataclass
class Row:
    contender: str
    concurrency: int
    sample: Sample
    other: float = 0.0  # cores used by processes outside this benchmark meanwhile
    note: str = ""


# --- The servers under test ---


def make_baseline() -> Any:
    """gunicorn's app factory (`bench.api_inference:make_baseline()`): the usual Flask demo."""
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


def forwards(log: Path | None) -> list[tuple[int, float]]:
    lines = log.read_text().splitlines() if log is not None and log.exists() else []
    return [(int(size), float(seconds)) for size, seconds in (line.split() for line in lines)]


def set_up(port: int, model: str) -> tuple[str, str]:
    """A new user, organization, cluster and running deployment: (session cookie, its id)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with signed_up(port, name) as account:
        cluster = account.cluster(account.organization(name), name, cpu=4, ram_gb=16, gpu=0)
        created = account.deployment(cluster, name, model, cpu=1, ram_gb=1)
        assert created["status"] == "running", created
        return account.cookie, str(created["id"])


def predictions(port: int, path: str, cookie: str, inputs: list[str]) -> Callable[[], bytes]:
    """A maker of `POST path {"input": <a random one of inputs>}` requests."""

    def make() -> bytes:
        body = json.dumps({"input": random.choice(inputs)}).encode()
        return request("POST", path, port, cookie=cookie, body=body)

    return make


def contenders(
    configs: list[tuple[str, str, str]], urls: list[str], tmp: Path, servers: Servers
) -> tuple[Targets, list[str]]:
    """Builds the model, starts every server (each API on its own database): targets, inputs."""
    rng = random.Random(0)
    (tmp / "model").mkdir()
    inputs = sentences(build_distilbert(tmp / "model", rng), rng)
    targets: Targets = {}
    for i, ((name, size, wait), url) in enumerate(zip(configs, urls, strict=True), 1):
        log = tmp / f"{i}.log"
        env = app_env(url, BATCH_MAX_SIZE=size, BATCH_MAX_WAIT_MS=wait, BENCH_BATCH_LOG=str(log))
        port = servers.start(
            lambda port: module_command("bench.api_inference", "--serve", str(port)), env
        )
        cookie, deployment = set_up(port, "distilbert-sst2")
        path = f"/api/v1/deployments/{deployment}/predict"
        targets[name] = (port, predictions(port, path, cookie, inputs), log)
    gunicorn = ["gunicorn", "-w", "1", "-k", "sync", "--no-control-socket"]

    def baseline(port: int) -> list[str]:
        return module_command(
            *gunicorn, "-b", f"{HOST}:{port}", "bench.api_inference:make_baseline()"
        )

    port = servers.start(baseline, {}, ready=None)
    targets[BASELINE] = (port, predictions(port, "/predict", "", inputs), None)
    return targets, inputs


# --- (a) DistilBERT ---


def ours() -> set[int]:
    """This benchmark's processes: this one, its servers, their PostgreSQL backends."""
    return family(os.getpid()) | postgres_backends(DB_NAME)


async def measured(cell: Awaitable[Sample]) -> tuple[Sample, float]:
    """The sample, and the cores every process outside this benchmark used meanwhile."""
    before = cpu_reading(own=ours())
    sample = await cell
    return sample, cores(before, cpu_reading(own=ours()), sample.elapsed)["other"]


async def raw_model(runtime: Any, inputs: list[str], batch: int, seconds: float) -> Sample:
    """DistilBertRuntime.predict_batch (tokenizer, forward, softmax): the worker's code path."""

    async def call() -> object:
        return await runtime.predict_batch(random.sample(inputs, batch))

    await call()  # warm-up
    return await repeat(call, seconds, per_call=batch)


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
                    raw = raw_model(runtime, inputs, concurrency, args.duration)
                    cells[name, concurrency] = Row(name, concurrency, *await measured(raw))
                    continue
                port, make, log = targets[name]
                await drive(port, make, concurrency, args.warmup)
                done = len(forwards(log))
                sample, other = await measured(drive(port, make, concurrency, args.duration))
                cell = Row(name, concurrency, sample, other)
                if passes := forwards(log)[done:]:
                    mean = sum(n for n, _ in passes) / len(passes)
                    busy = sum(s for _, s in passes) / sample.elapsed
                    cell.note = f"{len(passes)}, mean batch {mean:.1f}, model busy {busy:.0%}"
                cells[name, concurrency] = cell
                print(name, concurrency, f"{sample.rate:.1f}/s", cell.note, file=sys.stderr)
        rounds.append(cells)
    await runtime.unload()
    return rounds


# --- (b) 1,000 async mock predictions ---


async def accept_all(port: int, cookie: str, deployment: str) -> float:
    """MOCK_TOTAL `Async-Mode: true` predictions over MOCK_CONNECTIONS connections: the seconds
    until all were accepted (202)."""
    path = f"/api/v1/deployments/{deployment}/predict"
    raw = predictions(port, path, cookie, ["hello"])()
    raw = raw.replace(b"\r\n\r\n", b"\r\nAsync-Mode: true\r\n\r\n", 1)
    return await count_through(port, raw, MOCK_TOTAL, MOCK_CONNECTIONS)


async def all_completed(deployment: str, start: float) -> float:
    """Seconds from `start` until the database has all MOCK_TOTAL predictions completed (polled
    on one connection)."""
    import psycopg

    count = b"SELECT count(*) FROM predictions WHERE deployment_id = %s AND status = 'completed'"
    url = database_url(DB_NAME)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while (await (await conn.execute(count, (deployment,))).fetchone() or (0,))[0] < MOCK_TOTAL:
            if time.perf_counter() - start > 120:
                raise RuntimeError("not all mock predictions completed within 120 s")
            await asyncio.sleep(0.05)
    return time.perf_counter() - start


def bench_mock(in_process: bool, url: str) -> list[object]:
    """One table row: acceptance, completion, memory of the API (and of the separate worker)."""
    env = app_env(url, WORKER_IN_PROCESS=str(in_process).lower())
    with Servers() as servers:
        if not in_process:
            servers.spawn(module_command("app.cli", "worker"), env)
        port = servers.start(lambda port: uvicorn_command("app.main:app", port), env)
        worker, api = servers.procs[0], servers.procs[-1]  # the same process when in_process
        cookie, deployment = set_up(port, "mock")
        listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s"
        while sql(listening, DB_NAME, "LISTEN%") < len(servers.procs):  # every notifier listens
            time.sleep(0.2)
        idle = {proc.pid: memory_mib(proc.pid)[0] for proc in servers.procs}

        def reading() -> CpuReading:
            return cpu_reading(api=[api.pid], rest=ours() - {api.pid})

        async def both() -> tuple[float, CpuReading, float]:
            start = time.perf_counter()
            accepted = await accept_all(port, cookie, deployment)
            at_acceptance = reading()
            return accepted, at_acceptance, await all_completed(deployment, start)

        before = reading()
        accepted, at_acceptance, done = run(both())
        other = cores(before, at_acceptance, accepted)["other"]
        api_ms = cores(before, reading(), 1.0)["api"] * 1000 / MOCK_TOTAL  # CPU ms per predict

        def memory(proc: subprocess.Popen[bytes]) -> str:
            return f"{idle[proc.pid]:.0f} / {memory_mib(proc.pid)[1]:.0f}"

        api_memory, worker_memory = memory(api), "-" if in_process else memory(worker)
    where = "in the API process" if in_process else "separate `mlops worker`"
    numbers = [f"{accepted:.2f}", f"{other:.2f}", f"{done:.2f}", f"{api_ms:.1f}"]
    return [where, *numbers, api_memory, worker_memory]


# --- The report ---


def report(args: argparse.Namespace, rounds: list[Round], mock: list[list[object]]) -> None:
    import torch

    print(
        f"\n{machine_line()}, torch {torch.__version__}, {args.threads} torch threads in every "
        f"contender; {args.warmup:g} s warm-up + {args.duration:g} s per cell; per cell the best "
        f"of {args.rounds} round(s)\n"
    )
    best: Round = {}
    for key, cell in (item for cells in rounds for item in cells.items()):
        best[key] = max(best.get(key, cell), cell, key=lambda r: r.sample.rate)
    if best:
        rows = sorted(best.values(), key=lambda r: (r.contender, r.concurrency))
        columns = [
            "contender",
            "concurrency",
            "sentences/s",
            "p50 ms",
            "p99 ms",
            "other load (cores)",
            "forward passes",
        ]
        cells = [
            [
                r.contender,
                r.concurrency,
                f"{r.sample.rate:.1f}",
                f"{r.sample.ms(0.5):.0f}",
                f"{r.sample.ms(0.99):.0f}",
                f"{r.other:.2f}",
                r.note,
            ]
            for r in rows
        ]
        print(table(columns, cells, align="lrrrrrl"))
        batched = [r for r in rows if r.contender.startswith("API b") and r.concurrency == 32]
        top = max(batched, key=lambda r: r.sample.rate).contender
        print(f"\nConcurrency 32, {top} vs its neighbours in the same round (aims: >= 3x, >= 80%):")
        for number, round_cells in enumerate(rounds, 1):
            api, base, raw = (round_cells[name, 32] for name in (top, BASELINE, RAW))
            others = "/".join(f"{r.other:.1f}" for r in (api, base, raw))
            print(
                f"- round {number}: {api.sample.rate / base.sample.rate:.2f}x the per-request "
                f"baseline, {api.sample.rate / raw.sample.rate:.0%} of raw batch 32 (other load "
                f"{others} cores)"
            )
    if mock:
        print(f"\n{MOCK_TOTAL} async mock predictions, {MOCK_CONNECTIONS} connections, 10-17 s\n")
        columns = [
            "worker",
            "accept all s",
            "other load (cores)",
            "all completed s",
            "API CPU ms/accept",
            "API RSS idle / peak MiB",
            "worker RSS idle / peak MiB",
        ]
        print(table(columns, mock))


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

    configs = [(f"API batch 32, wait {w:g} ms", "32", f"{w:g}") for w in args.waits]
    configs.append(("API no batching", "1", "0"))
    names = [DB_NAME] + [f"{DB_NAME}_{i}" for i in range(1, len(configs) + 1)]
    rounds, mock = list[Round](), list[list[object]]()
    with tempfile.TemporaryDirectory(prefix="bench-api-inference-") as tmp:
        model = str(Path(tmp) / "model")
        os.environ.update(DISTILBERT_MODEL=model, OMP_NUM_THREADS=str(args.threads))
        with databases(*names) as [mock_url, *urls]:
            if not args.skip_bert:
                with Servers() as servers:
                    targets, inputs = contenders(configs, urls, Path(tmp), servers)
                    rounds = run(bench_bert(args, targets, inputs))
            for _ in range(0 if args.skip_mock else args.rounds):
                mock += [bench_mock(in_process, mock_url) for in_process in (True, False)]
    report(args, rounds, mock)


if __name__ == "__main__":
    main()
