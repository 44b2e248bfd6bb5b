"""The hot paths of issue 11, one row of its table per command, each against the bare endpoint of
bench.request_path (one indexed query behind uvicorn) in the same run.

Run from the project root: `python -m bench.hot_paths ROW [--baseline REV] [--duration 8]`, ROW one
of: create, create-preempting, create-backlog, intake, burst, sync, me, growth, memory (the
DistilBERT row is `python -m bench.api_inference --skip-mock`). Each app is served as `mlops serve`
serves it by default (one process per core, its in-process worker, rate limits off) on a fresh
database `mlops_bench_hot_*`; the bare endpoint gets as many processes. Load comes from wrk (the
Debian package) at concurrency 16 unless the row says otherwise; counted bursts from the harness's
raw-asyncio client. With `--baseline REV` the row also runs against that commit's tree, checked out
in a temporary git worktree, right before this tree's: before and after in one run. The bare
endpoint is measured first and last, and ratios are against the mean of the two.
"""

import argparse
import sys

from bench.harness import machine_line, server_stack, table
from bench.hot_paths import wrk
from bench.hot_paths.rows import ROWS, Figures, Options
from bench.hot_paths.stacks import bare, served, trees


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _bare(port: int, path: str, options: Options, concurrency: int) -> Figures:
    wrk.drive(port, path, connections=concurrency, seconds=options.warmup)
    load = wrk.drive(port, path, connections=concurrency, seconds=options.duration)
    return {"req/s": load.rate, "p50 ms": load.p50_ms, "p99 ms": load.p99_ms}


def _versus_bare(figures: Figures, bares: list[Figures], row: str) -> Figures:
    def mean(key: str) -> float:
        return sum(float(str(b[key])) for b in bares) / len(bares)

    if row == "sync":
        return figures | {"p50 - bare p50 ms": float(str(figures["p50 ms"])) - mean("p50 ms")}
    return figures | {"of bare": f"{float(str(figures['req/s'])) / mean('req/s'):.1%}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("row", choices=sorted(ROWS))
    parser.add_argument("--baseline", help="a commit whose tree is measured too, in the same run")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per cell")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    row = ROWS[args.row]
    options = Options(args.duration, args.warmup, args.concurrency)

    results: list[tuple[str, Figures]] = []
    with trees(args.baseline) as checkouts, bare() as (bare_port, bare_path):
        bares = []
        if row.bare_concurrency is not None:
            bares.append(_bare(bare_port, bare_path, options, row.bare_concurrency))
            results.append(("bare (first)", bares[-1]))
        for tree in checkouts:
            with served(tree, f"hot_{args.row.replace('-', '_')}", **row.settings) as app:
                figures = row.measure(app, options)
            results.append((tree.label, figures))
            print(tree.label, figures, file=sys.stderr)
        if row.bare_concurrency is not None:
            bares.append(_bare(bare_port, bare_path, options, row.bare_concurrency))
            results.append(("bare (last)", bares[-1]))
            results = [(label, _versus_bare(f, bares, args.row)) if not label.startswith("bare")
                       else (label, f) for label, f in results]  # fmt: skip

    columns = list(dict.fromkeys(key for _, figures in results for key in figures))
    print(
        f"{machine_line()}; {server_stack()}; row `{args.row}` (aim: {row.aim}); "
        f"{args.duration:g} s per cell after {args.warmup:g} s of warm-up\n"
    )
    print(
        table(
            ["contender", *columns],
            [[label, *(_number(f.get(c, "")) for c in columns)] for label, f in results],
        )
    )


if __name__ == "__main__":
    main()
