"""Where the time of each hot path goes: py-spy samples the API process under load, path by path,
and saves a flame graph of each (an SVG any browser opens offline) beside this module in
`bench/flamegraphs/`, with a summary of the top frames.

Run from the project root: `python -m bench.profile_paths [--seconds 8] [--paths ...]` (the
`bench` extra brings py-spy; sampling another process needs ptrace rights: root, or
`kernel.yama.ptrace_scope=0`). Creates the database `mlops_bench_profile_paths`, serves the app
(uvicorn, 1 process, its in-process worker, mock predictions with no delay), signs up a user with a
cluster and a running mock deployment, and per path drives it with the harness's keep-alive client
(concurrency 16, 1 for the synchronous predict) while py-spy records: once as collapsed stacks,
which the summary is computed from, and once as the SVG. The summary gives, for the app's own
functions and for each library, the share of the samples of the API's event-loop thread spent
inside them (children included, each stack counted once per function or library), and the idle
share (the loop waiting for the database or the client); and the per-request budget: the API
process's CPU milliseconds per request, split by where the event loop's busy samples were (see
STAGES).
"""

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    Servers,
    app_env,
    databases,
    drive,
    machine_line,
    request,
    run,
    signed_up,
    sql,
    table,
    uvicorn_command,
)

DB_NAME = "mlops_bench_profile_paths"
OUT = Path(__file__).resolve().parent / "flamegraphs"
PATHS = ("predict_async", "create", "me", "predict_sync")
# A frame of py-spy's collapsed output: `function (path/to/file.py:line)`.
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*?)(?::\d+)?\)$")
# The loop's leaf frames while it waits (uvloop's loop is C: the stack ends in asyncio's runner).
IDLE = {"Runner.run", "select", "_run_once", "run_forever"}


def py_spy(pid: int, seconds: float, output: Path, fmt: str) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)]
    command += ["--duration", str(int(seconds)), "--rate", "250", "--format", fmt]
    command += ["--output", str(output), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def where(frame: str) -> str | None:
    """`app/services/auth.py:principal_for_session` for the app's own frames, the package for a
    library's (py-spy writes their paths from the package: `sqlalchemy/engine/base.py`)."""
    found = FRAME.match(frame)
    if found is None or found["file"].startswith("<"):
        return None
    file = found["file"]
    if file.startswith("app/"):
        return f"{file}:{found['function']}"
    return None if file.startswith("/") else file.split("/", 1)[0].removesuffix(".py")


# The per-request budget's stages: a busy sample counts for the first stage one of whose markers
# is a frame of its stack (the function as py-spy names it); "request stack" takes the rest
# (uvicorn, the middleware, FastAPI's routing, dependency solving and body parsing).
STAGES = (
    ("worker (claim, finish)", ("Worker.",)),
    ("session lookup", ("optional_user",)),
    ("tenancy (access check)", ("_access.<locals>.dependency",)),
    ("commit", ("AsyncSession.commit",)),
    ("statements and logic", ("run_endpoint_function",)),
    ("response", ("serialize_response", "RequestResponseCycle.send")),
)
STACK = "request stack"


@dataclass
class Summary:
    app: list[tuple[str, float]]  # the app's functions, children included
    owners: list[tuple[str, float]]  # who runs at the leaf: the app or a library, by itself
    idle: float
    stages: dict[str, float]  # shares of the busy samples, by STAGES


def stage(frames: list[str]) -> str:
    functions = [frame.split(" (", 1)[0] for frame in frames]
    for name, markers in STAGES:
        if any(f.startswith(m) for f in functions for m in markers):
            return name
    return STACK


def summary(collapsed: Path, top: int = 12) -> Summary:
    """Shares (%) of the event loop's samples: inside each of the app's functions, run by each
    package at the leaf, and idle."""
    inside: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames[0].startswith("_run_module_as_main"):
            continue  # not the event loop's thread (the thread pool, psycopg's)
        samples = int(count)
        total += samples
        leaf = FRAME.match(frames[-1])
        if leaf is not None and leaf["function"] in IDLE:
            idle += samples
            continue
        stages[stage(frames)] += samples
        places = [where(frame) for frame in frames]
        for place in {p for p in places if p is not None and p.startswith("app/")}:
            inside[place] += samples
        owner = next((p for p in reversed(places) if p is not None), "other")
        owners["app" if owner.startswith("app/") else owner] += samples

    def shares(counts: Counter[str]) -> list[tuple[str, float]]:
        return [(place, 100 * n / max(total, 1)) for place, n in counts.most_common(top)]

    busy = max(sum(stages.values()), 1)
    split = {name: stages[name] / busy for name, _ in (*STAGES, (STACK, ()))}
    return Summary(shares(inside), shares(owners), 100 * idle / max(total, 1), split)


def targets(port: int, cookie: str, cluster: str, deployment: str) -> dict[str, bytes]:
    def post(path: str, body: object, *extra: str) -> bytes:
        raw = request("POST", path, port, cookie=cookie, body=json.dumps(body).encode())
        head, _, rest = raw.partition(b"\r\n")
        return b"\r\n".join([head, *(h.encode() for h in extra), rest])

    predict = f"/api/v1/deployments/{deployment}/predict"
    small = {"cpu": 0.001, "ram_gb": 0, "gpu": 0}
    creations = f"/api/v1/clusters/{cluster}/deployments"
    return {
        "predict_async": post(predict, {"input": "hello"}, "Async-Mode: true"),
        "create": post(creations, {"name": "x", "resources": small}),
        "me": request("GET", "/api/v1/auth/me", port, cookie=cookie),
        "predict_sync": post(predict, {"input": "hello"}),
    }


EXPECT = {"predict_async": 202, "create": 201, "me": 200, "predict_sync": 200}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds sampled per recording")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)

    reports = []
    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, WORKER_IN_PROCESS="true", MOCK_DELAY_MIN="0", MOCK_DELAY_MAX="0")
        port = servers.start(lambda p: uvicorn_command("app.main:app", p), env)
        pid = servers.procs[-1].pid
        with signed_up(port) as account:
            organization = account.organization("Bench Org")
            cluster = account.cluster(organization, "pool", 100_000, 1000, 0)
            deployment = account.deployment(cluster, "echo", "mock")
            raws = targets(port, account.cookie, cluster, deployment["id"])
        for path in args.paths:
            settled()  # the previous path's predictions finished: its work is not sampled here
            concurrency = 1 if path == "predict_sync" else 16
            raw = raws[path]
            run(drive(port, constant(raw), concurrency, 2.0, EXPECT[path]))  # warm-up
            collapsed, svg = OUT / f"{path}.txt", OUT / f"{path}.svg"
            samples, cpu_ms = [], []
            for output, fmt in ((collapsed, "raw"), (svg, "flamegraph")):
                spy = py_spy(pid, args.seconds, output, fmt)
                before = process_cpu(pid)
                load = drive(port, constant(raw), concurrency, args.seconds, EXPECT[path])
                samples.append(run(load))
                cpu_ms.append((process_cpu(pid) - before) * 1000 / len(samples[-1].latencies))
                spy.wait()
            found = summary(collapsed)
            # The SVG names the command and some files by absolute path: relative to the
            # project instead, so that the file says nothing of the machine it was made on.
            svg.write_text(svg.read_text().replace(f"{ROOT}/", ""))
            collapsed.unlink()  # the SVG is the record; these stacks were for the summary
            reports.append((path, concurrency, samples[0], found, svg, cpu_ms[0]))

    print(f"{machine_line()}; uvicorn 1 process, in-process worker; {args.seconds:g} s a record\n")
    print(budget(reports) + "\n")
    for path, concurrency, sample, found, svg, _ in reports:
        print(f"### {path} (concurrency {concurrency}): {sample.rate:.0f} req/s; {svg.name}\n")
        print(table(["the app's function", "inside it"], percent(found.app), "lr") + "\n")
        print(table(["running at the leaf", "share"], percent(found.owners), "lr") + "\n")
        print(f"idle (the loop waiting on the database or the client): {found.idle:.1f}%\n")


def settled(limit: float = 300) -> None:
    """Until no prediction is queued or running (the worker has caught up)."""
    import time

    open_rows = "SELECT count(*) FROM predictions WHERE status IN ('queued', 'running')"
    deadline = time.monotonic() + limit
    while sql(open_rows, database=DB_NAME):
        if time.monotonic() > deadline:
            raise RuntimeError(f"predictions still open after {limit:g} s")
        time.sleep(0.5)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def budget(reports: list[tuple[str, int, Any, Summary, Path, float]]) -> str:
    """The per-request budget: the API's CPU ms per request split by stage (py-spy's sampling,
    at 250 Hz and non-blocking, is in these milliseconds too, a few percent)."""
    names = [name for name, _ in STAGES] + [STACK]
    rows = [
        [path, f"{cpu:.2f}", *(f"{cpu * found.stages[name]:.2f}" for name in names)]
        for path, _, _, found, _, cpu in reports
    ]
    return table(["path", "CPU ms/request", *names], rows)


def percent(shares: list[tuple[str, float]]) -> list[list[str]]:
    return [[f"`{place}`", f"{share:.1f}%"] for place, share in shares]


def constant(raw: bytes) -> Callable[[], bytes]:
    return lambda: raw


if __name__ == "__main__":
    main()
