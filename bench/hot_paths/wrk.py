"""Load from wrk (the Debian package, written in C): the measuring client costs a small, steady
share of the 2 cores, the same for every contender, where a Python client would be the limit.

Each run gets a Lua script written here: a fixed request, or one whose body is made per request
from a counter unique across wrk's threads (`n`), and a `done` hook that prints the summary as
JSON, so nothing is parsed from wrk's text report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import HOST

_SCRIPT = """
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
function init(args)
  offset = tonumber(args[1] or "0")
end

function request()
  n = n + 1
  local i = offset + n * {threads} + tid
  return wrk.format({method}, {path}, {headers}, {body})
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '\\n{{"requests": %d, "micros": %d, "p50": %d, "p99": %d, "bad_status": %d, "socket": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    """What wrk measured: completed requests, seconds, latency quantiles, failures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad_status: int  # answers outside 2xx/3xx
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua one for the ASCII used here


def drive(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    connections: int = 16,
    seconds: float = 8.0,
    offset: int = 0,
) -> Load:
    """wrk for `seconds` over `connections` keep-alive connections (2 threads, 1 for a single
    connection). `body` is a Lua expression, `i` the request's number from `offset` on (unique
    across threads); for a JSON body the Content-Type is set. Any failure raises."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (the Debian package)")
    threads = 1 if connections == 1 else 2
    all_headers = dict(headers or {})
    if body is not None:
        all_headers.setdefault("Content-Type", "application/json")
    lua_headers = (
        "{"
        + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in all_headers.items())
        + "}"
    )
    script = _SCRIPT.format(
        threads=threads,
        method=lua_string(method),
        path=lua_string(path),
        headers=lua_headers,
        body=body or "nil",
    )
    with tempfile.TemporaryDirectory(prefix="mlops-bench-wrk-") as scratch:
        script_path = Path(scratch, "load.lua")
        script_path.write_text(script)
        command = [
            wrk,
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            "--timeout=30s",
            f"--script={script_path}",
            f"http://{HOST}:{port}{path}",
            "--",
            str(offset),
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    load = Load(
        requests=summary["requests"],
        seconds=summary["micros"] / 1e6,
        p50_ms=summary["p50"] / 1000,
        p99_ms=summary["p99"] / 1000,
        bad_status=summary["bad_status"],
        socket_errors=summary["socket"],
    )
    if load.bad_status or load.socket_errors:
        raise RuntimeError(f"{method} {path}: {load}; wrk said:\n{finished.stdout}")
    return load


def rate(port: int, path: str, **options: Any) -> float:
    """`drive(port, path, **options)`'s requests per second: a run of `harness.side_by_side`."""
    return drive(port, path, **options).rate
