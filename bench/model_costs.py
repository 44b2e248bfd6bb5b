"""What each model costs a worker to serve: memory, load time, latency, throughput.

Run from the project root: `python -m bench.model_costs [--rounds 2] [--duration 8]` (the `ml`
and `bench` extras). Prints a markdown table for docs/BENCHMARKS.md and the machine it ran on.

* mock: the worker's cost is the configured delay (MOCK_DELAY_MIN-MAX); what the runtime itself
  adds is measured in a fresh process with delay 0: RSS before and after 1,000 sequential calls
  (and 1,000 concurrent calls of 0.5 s), and the mean time per call.
* distilbert-sst2 at full distilbert-base size: the harness's build_distilbert() (random weights,
  a synthetic 30,522-entry WordPiece vocabulary) saved to a temp dir. Per round, a fresh process
  with --threads torch threads (OMP_NUM_THREADS, which binds the thread predict_batch runs torch
  in, and torch.set_num_threads) measures RSS before `import torch, transformers`, after it (the
  baseline), after `DistilBertRuntime(model_dir).load()` (the worker's code path), after the first
  predictions (the weights are paged in on first use) and at its peak; the load time; batch-1
  latency over --calls calls; sentences/s through `predict_batch` at batch 8 and 32. A second
  fresh process with 1 thread measures batch 32 again: what one core serves. Inputs are 15-40
  words of the synthetic vocabulary. Each cell also records the cores used by the measuring
  process and by every other process meanwhile (the machine is shared); the table keeps each
  cell's best round.
* gemma3:1b: the weights live in the Ollama server's process, not in our worker, and cannot be
  downloaded here: not measured.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    build_distilbert,
    cores,
    cpu_reading,
    environment,
    machine_line,
    memory_mib,
    module_command,
    repeat,
    sentences,
)

MOCK_CALLS, MOCK_CONCURRENT, MOCK_CONCURRENT_DELAY = 1000, 1000, 0.5
Result = dict[str, Any]
DASH = "\N{EN DASH}"  # ranges in the table, as in docs/BENCHMARKS.md


def rss_mib() -> float:
    """Resident memory of this process now (VmRSS)."""
    return memory_mib()[0]


async def timed_cell(
    run: Callable[[list[str]], Awaitable[object]],
    inputs: list[str],
    batch: int,
    seconds: float,
    calls: int,
) -> Result:
    """predict_batch on `batch` random inputs, back to back, for at least `seconds` and `calls`
    calls after one warm-up call; sentences/s, latency, and the cores used by this process and by
    every other one meanwhile."""

    async def call() -> object:
        return await run(random.sample(inputs, batch))

    await call()
    before = cpu_reading(own=[os.getpid()])
    sample = await repeat(call, seconds, min_calls=calls, per_call=batch)
    used = cores(before, cpu_reading(own=[os.getpid()]), sample.elapsed)
    return {
        "sentences_s": sample.rate,
        "p50_ms": sample.ms(0.5),
        "p95_ms": sample.ms(0.95),
        "own": used["own"],
        "other": used["other"],
    }


async def child_mock() -> Result:
    """The mock runtime in a fresh process: memory it adds, its own time per call."""
    from app.runtimes.mock import MockRuntime

    before = rss_mib()
    runtime = MockRuntime(0.0, 0.0)
    await runtime.load()
    await runtime.predict_batch(["warm-up"])
    start = time.perf_counter()
    for i in range(MOCK_CALLS):
        await runtime.predict_batch([f"input {i}"])
    per_call_us = (time.perf_counter() - start) / MOCK_CALLS * 1e6
    sequential = rss_mib()
    waiting = MockRuntime(MOCK_CONCURRENT_DELAY, MOCK_CONCURRENT_DELAY)
    calls = [waiting.predict_batch([f"input {i}"]) for i in range(MOCK_CONCURRENT)]
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(MOCK_CONCURRENT_DELAY / 2)
    in_flight = rss_mib()
    await asyncio.gather(*tasks)
    await runtime.unload()
    return {
        "rss_before": before,
        "rss_after_sequential": sequential,
        "rss_in_flight": in_flight,
        "per_call_us": per_call_us,
    }


async def child_distilbert(
    model_dir: str, words: list[str], threads: int, calls: int, seconds: float, batches: list[int]
) -> Result:
    """DistilBERT in a fresh process: the baseline, the real load, latency, throughput."""
    from app.runtimes.distilbert import DistilBertRuntime  # torch-free until load()

    result: Result = {"rss_bare": rss_mib(), "threads": threads}
    import torch
    import transformers

    # OMP_NUM_THREADS (set by the parent) is what binds: predict_batch runs torch in a worker
    # thread, and set_num_threads here only covers this one.
    torch.set_num_threads(threads)
    result["rss_baseline"] = rss_mib()
    result["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}"
    runtime = DistilBertRuntime(model_dir)
    start = time.perf_counter()
    await runtime.load()
    result["load_s"] = time.perf_counter() - start
    result["rss_loaded"] = rss_mib()

    random.seed(0)
    inputs = sentences(words, random.Random(0))
    tokens = [len(ids) for ids in runtime._tokenizer(inputs[:500])["input_ids"]]
    result["tokens"] = (min(tokens), sum(tokens) / len(tokens), max(tokens))
    for text in inputs[:3]:  # the first forward passes touch every weight
        await runtime.predict_batch([text])
    result["rss_warm"] = rss_mib()
    result["batch1"] = await timed_cell(runtime.predict_batch, inputs, 1, 0.0, calls)
    for batch in batches:
        result[f"batch{batch}"] = await timed_cell(runtime.predict_batch, inputs, batch, seconds, 3)
    result["rss_end"], result["rss_peak"] = memory_mib()
    await runtime.unload()
    return result


def run_child(args: list[str], env: dict[str, str]) -> Result:
    """This module in a fresh interpreter in --child mode; its last stdout line is the JSON
    result."""
    command = module_command("bench.model_costs", "--child", *args)
    done = subprocess.run(
        command, cwd=ROOT, env=environment(env), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def best(rounds: list[Result], key: str) -> Result:
    """The round with the most sentences/s in cell `key` (the least disturbed by neighbours)."""
    cells: list[Result] = [r[key] for r in rounds]
    return max(cells, key=lambda cell: cell["sentences_s"])


def span(values: list[float], digits: int = 0) -> str:
    low, high = (f"{v:.{digits}f}" for v in (min(values), max(values)))
    return low if low == high else f"{low}{DASH}{high}"


def report(
    args: argparse.Namespace, mock: Result, bert: list[Result], one: list[Result], delays: str
) -> None:
    print(
        f"\n{machine_line()}, {bert[0]['versions']}; DistilBERT with {args.threads} torch "
        f"threads (OMP_NUM_THREADS={args.threads} and torch.set_num_threads), and with 1 for the "
        f"last column; each round a fresh process per thread count; per cell the best of "
        f"{args.rounds} round(s); batch 1 over {args.calls} calls, batches 8 and 32 over "
        f"{args.duration:g} s\n"
    )

    def added(top: str, bottom: str = "rss_bare") -> str:
        return span([r[top] - r[bottom] for r in bert])

    b1 = best(bert, "batch1")
    b8, b32, single = best(bert, "batch8"), best(bert, "batch32"), best(one, "batch32")
    mock_added = mock["rss_after_sequential"] - mock["rss_before"]
    in_flight = mock["rss_in_flight"] - mock["rss_before"]
    print(
        "| model | runtime | worker RSS added (MiB) | load (s) | latency, batch 1 | "
        f"sentences/s at batch 1 / 8 / 32, {args.threads} threads | batch 32 on 1 thread |\n"
        "|---|---|---|---:|---|---:|---:|"
    )
    print(
        f"| mock | `MockRuntime` (asyncio sleep) | {mock_added:.1f} after 1,000 calls, "
        f"{in_flight:.1f} with 1,000 in flight | 0 | the configured delay, {delays}, plus "
        f"{mock['per_call_us']:.0f} µs of the runtime's own per call | not batchable: calls wait "
        f"concurrently | {DASH} |"
    )
    print(
        f"| distilbert-sst2, full distilbert-base size | `DistilBertRuntime` (transformers, in "
        f"the worker) | {added('rss_warm')}: import torch + transformers "
        f"{added('rss_baseline')}, load {added('rss_loaded', 'rss_baseline')}, first "
        f"predictions {added('rss_warm', 'rss_loaded')}; peak {added('rss_peak')} | "
        f"{span([r['load_s'] for r in bert], 1)} | p50 {b1['p50_ms']:.0f} ms, "
        f"p95 {b1['p95_ms']:.0f} ms | {b1['sentences_s']:.1f} / {b8['sentences_s']:.1f} / "
        f"{b32['sentences_s']:.1f} | {single['sentences_s']:.1f} |"
    )
    print(
        "| gemma3:1b | `OllamaRuntime` (HTTP to an Ollama server) | not measured here | "
        "not measured here | not measured here | not measured here | not measured here |"
    )
    lo, mean, hi = bert[0]["tokens"]

    def rss(key: str) -> str:
        return span([r[key] for r in bert])

    print(
        f"\nDistilBERT inputs: 15{DASH}40 words, {lo}{DASH}{hi} tokens (mean {mean:.0f}). RSS "
        f"(MiB) of the fresh process: bare (interpreter, psutil, app.runtimes.distilbert) "
        f"{rss('rss_bare')}; after import torch + transformers (the baseline) "
        f"{rss('rss_baseline')}; after load() {rss('rss_loaded')}; after the first predictions "
        f"{rss('rss_warm')}; after batch 32 {rss('rss_end')}, peak (VmHWM) {rss('rss_peak')}. "
        f"Batch 32 p50: {b32['p50_ms']:.0f} ms ({args.threads} threads), "
        f"{single['p50_ms']:.0f} ms (1 thread)."
    )
    print("\nPer round: sentences/s (cores used by the measuring process / by every other one)")
    for number, (r, r1) in enumerate(zip(bert, one, strict=True), 1):
        cells = [(f"batch {key[5:]}", r[key]) for key in ("batch1", "batch8", "batch32")]
        cells.append(("batch 32 on 1 thread", r1["batch32"]))
        shown = ", ".join(
            f"{name} {c['sentences_s']:.1f} ({c['own']:.2f} / {c['other']:.2f})"
            for name, c in cells
        )
        print(f"- round {number}: load {r['load_s']:.1f} s; {shown}")
    print(
        "\ngemma3:1b (Ollama): not measured here. Its weights are held by the Ollama server's own "
        "process (OllamaRuntime only sends HTTP requests to it), and they cannot be downloaded on "
        "this machine."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="fresh DistilBERT processes")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput cell")
    parser.add_argument("--calls", type=int, default=50, help="batch-1 calls for the latency")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # a measuring process
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "mock":
            result = asyncio.run(child_mock())
        else:
            model, words_file, *batches = args.child[1:]
            words = Path(words_file).read_text().split()
            run = child_distilbert(
                model, words, args.threads, args.calls, args.duration, [int(b) for b in batches]
            )
            result = asyncio.run(run)
        print(json.dumps(result))
        return

    from app.core.config import Settings

    settings = Settings()
    delays = f"{settings.mock_delay_min:g}{DASH}{settings.mock_delay_max:g} s"
    print("mock: a fresh process, delay 0 ...", file=sys.stderr, flush=True)
    mock = run_child(["mock"], {})
    options = ["--calls", str(args.calls), "--duration", str(args.duration)]
    bert, one = list[Result](), list[Result]()
    with tempfile.TemporaryDirectory(prefix="bench-model-costs-") as tmp:
        model, words_file = Path(tmp) / "model", Path(tmp) / "words.txt"
        model.mkdir()
        print("distilbert: building the full-size model ...", file=sys.stderr, flush=True)
        words_file.write_text(" ".join(build_distilbert(model, random.Random(0))))
        for number in range(1, args.rounds + 1):
            for threads, batches, results in ((args.threads, ["8", "32"], bert), (1, ["32"], one)):
                print(f"distilbert: round {number}, {threads} thread(s) ...", file=sys.stderr)
                env = {"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
                child = ["distilbert", str(model), str(words_file), *batches]
                child += ["--threads", str(threads)]
                results.append(run_child([*child, *options], env))
    print("gemma3:1b (Ollama): not measured here (no model download).", file=sys.stderr)
    report(args, mock, bert, one, delays)


if __name__ == "__main__":
    main()
