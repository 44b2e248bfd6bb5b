"""What the rows of bench.hot_paths run against: checkouts of the project (this one, and a baseline
commit in a temporary git worktree), the app of a checkout served as `mlops serve` serves it, and
the bare endpoint."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.harness import (
    DATABASE_PREFIX,
    HOST,
    ROOT,
    Account,
    Servers,
    app_env,
    connect,
    databases,
    memory_mib,
    signed_up,
    sql,
    uvicorn_command,
)

# `mlops serve`'s default on PostgreSQL is one process per core: 2 on the machine of the figures.
BARE_WORKERS = 2
BARE_USER_SQL = """INSERT INTO users (id, username, email, password_hash, created_at)
VALUES (gen_random_uuid(), 'bare', 'bare@example.com', '-', now()) RETURNING id"""


@dataclass(frozen=True)
class Tree:
    """A checkout of the project whose app is measured."""

    label: str
    root: Path


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@contextlib.contextmanager
def trees(baseline: str | None) -> Iterator[list[Tree]]:
    """This checkout; with `baseline` (a commit) that commit's tree first, checked out in a
    temporary worktree removed at the end, so that before and after run in one run."""
    dirty = (
        " + uncommitted changes" if _git("status", "--porcelain", "--untracked-files=no") else ""
    )
    this = Tree(f"after ({_git('rev-parse', '--short', 'HEAD').strip()}{dirty})", ROOT)
    if baseline is None:
        yield [this]
        return
    commit = _git("rev-parse", "--short", f"{baseline}^{{commit}}").strip()
    scratch = Path(tempfile.mkdtemp(prefix="mlops-bench-baseline-"))
    _git("worktree", "add", "--detach", str(scratch), commit)
    try:
        yield [Tree(f"before ({commit})", scratch), this]
    finally:
        _git("worktree", "remove", "--force", str(scratch))


@dataclass
class Served:
    """The app of a tree, served on `port`, its database at `url`, a signed-in account."""

    tree: Tree
    port: int
    url: str
    database: str
    proc: subprocess.Popen[bytes]
    account: Account

    @property
    def cookie(self) -> str:
        return self.account.cookie

    def processes(self) -> list[psutil.Process]:
        """The serving processes (uvicorn's workers under its supervisor)."""
        return serving_processes(self.proc)

    def rss_mib(self) -> list[tuple[float, float]]:
        """(RSS, peak RSS) of each serving process."""
        return [memory_mib(p.pid) for p in self.processes()]

    def sql(self, statement: str, *params: object) -> Any:
        """The first value of the first row of `statement` on this app's database, or None."""
        return sql(statement, *params, database=self.database)


@contextlib.contextmanager
def served(tree: Tree, name: str, **settings: str) -> Iterator[Served]:
    """`mlops serve` of `tree` (its own migrations, the default process count) on a fresh
    database `mlops_bench_<name>`, with a signed-up user; stopped and dropped at the end."""
    database = f"{DATABASE_PREFIX}{name}"
    with databases(database, migrate=False) as [url], Servers() as servers:
        env = app_env(url, **settings)

        def command(port: int) -> list[str]:
            return [sys.executable, "-m", "app.cli", "serve", "--host", HOST, "--port", str(port)]

        port = servers.start(command, env, cwd=tree.root)
        _wait_listening(database, servers.procs[0])
        with signed_up(port) as account:
            yield Served(tree, port, url, database, servers.procs[0], account)


def serving_processes(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """uvicorn's worker processes under `proc` (not multiprocessing's resource tracker), or
    `proc` itself when it serves alone."""
    workers = [
        child
        for child in psutil.Process(proc.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
    return workers or [psutil.Process(proc.pid)]


def _wait_listening(database: str, proc: subprocess.Popen[bytes]) -> None:
    """Until every serving process has its LISTEN connection: a notification sent before would
    be missed, and the first requests would measure start-up."""
    expected = len(serving_processes(proc))
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'"
    deadline = time.monotonic() + 60
    while sql(query, database) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{expected} LISTEN connections expected on {database}")
        time.sleep(0.2)


@contextlib.contextmanager
def bare() -> Iterator[tuple[int, str]]:
    """The bare endpoint of bench.request_path (one indexed query behind uvicorn, as many
    processes as the app): its port and the path of its one user."""
    with databases(f"{DATABASE_PREFIX}hot_bare") as [url], Servers() as servers:
        with connect(f"{DATABASE_PREFIX}hot_bare") as conn:
            (user_id,) = conn.execute(BARE_USER_SQL.encode()).fetchone() or (None,)

        def command(port: int) -> list[str]:
            return uvicorn_command("bench.request_path:bare_app", port, workers=BARE_WORKERS)

        port = servers.start(command, {"BENCH_DATABASE_URL": url}, ready=None)
        yield port, f"/users/{user_id}"
