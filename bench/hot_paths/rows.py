"""The rows of issue 11's table: each measures one app (a `Served` tree) and answers figures by
name; bench.hot_paths runs them against each tree and the bare endpoint and prints the table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import connect, count_through, request, run
from bench.hot_paths import wrk
from bench.hot_paths.stacks import Served

ASYNC = {"Async-Mode": "true"}
PREDICT_BODY = wrk.lua_string(json.dumps({"input": "hello"}))
MOCK_FAST = {"MOCK_DELAY_MIN": "0", "MOCK_DELAY_MAX": "0"}
MOCK_DELAY_MAX = 17.0  # the setting's default, which the burst and memory rows keep
# Lua expressions of the request number i (bench.hot_paths.wrk): the JSON body of a creation.
FITS = (
    """'{"name": "d' .. i .. '", "model": "mock", """
    """"resources": {"cpu": 0.001, "ram_gb": 0, "gpu": 0}}'"""
)
# Two in three a priority-0 deployment (pending on a full cluster); every third a preemptor of a
# priority rising with i, which evicts the lowest running one (until priorities reach 1000).
MIXED = (
    """'{"name": "m' .. i .. '", "model": "mock", """
    """"resources": {"cpu": 1, "ram_gb": 0, "gpu": 0}, """
    """"priority": ' .. ((i % 3 == 2) and math.min(1000, 1 + math.floor(i / 3)) or 0) .. '}'"""
)
PREEMPTED_SQL = """SELECT count(*) FROM deployment_events e JOIN deployments d
ON d.id = e.deployment_id WHERE d.cluster_id = %s AND e.type = 'preempted'"""
# Finished predictions of the last 29 days (inside the default retention of 30, so the pruning
# job leaves them), spread over time like a long-lived table's, on the measured deployment.
FINISHED_SQL = """INSERT INTO predictions (id, organization_id, deployment_id, created_by, model,
    input, status, output, error, idempotency_key, attempts, worker_id, lease_expires_at,
    started_at, completed_at, created_at)
SELECT gen_random_uuid(), d.organization_id, d.id, d.created_by, d.model, 'old input ' || i,
    CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'completed' END,
    CASE WHEN i %% 50 = 0 THEN NULL ELSE '{"input": "old", "result": "done"}'::json END,
    CASE WHEN i %% 50 = 0 THEN 'the model failed' END, NULL, 1, 'gone', NULL,
    t, t + interval '1 second', t
FROM deployments d, generate_series(1, %s) AS i,
    LATERAL (SELECT now() - interval '29 days' + i * (interval '29 days' / %s)) AS at(t)
WHERE d.id = %s"""
DONE_SQL = "SELECT count(*) FROM predictions WHERE deployment_id = %s AND status = 'completed'"

Figures = dict[str, object]


@dataclass
class Options:
    duration: float
    warmup: float
    concurrency: int


def _loaded(
    s: Served,
    options: Options,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    connections: int,
    between: Callable[[], None] | None = None,
) -> wrk.Load:
    """A warm-up (discarded; then `between()`), then the measured wrk run, whose request numbers
    continue past the warm-up's."""

    def load(seconds: float, offset: int) -> wrk.Load:
        return wrk.drive(
            s.port, path, method=method, headers=headers, body=body,
            connections=connections, seconds=seconds, offset=offset,
        )  # fmt: skip

    warm_up = load(options.warmup, 0)
    if between is not None:
        between()
    return load(options.duration, warm_up.requests + 2 * connections + 4)


def load_figures(load: wrk.Load) -> Figures:
    return {"req/s": load.rate, "p50 ms": load.p50_ms, "p99 ms": load.p99_ms}


def _running_deployment(s: Served, org_name: str = "bench") -> str:
    org = s.account.organization(org_name)
    cluster = s.account.cluster(org, "pool", 8, 8, 0)
    deployment = s.account.deployment(cluster, "echo", "mock")
    assert deployment["status"] == "running", deployment
    return str(deployment["id"])


def create_fits(s: Served, options: Options) -> Figures:
    org = s.account.organization("bench")
    cluster = s.account.cluster(org, "roomy", 100_000, 1000, 0)
    path = f"/api/v1/clusters/{cluster}/deployments"
    headers = {"Cookie": f"session={s.cookie}"}
    load = _loaded(
        s, options, path, method="POST", headers=headers, body=FITS,
        connections=options.concurrency,
    )  # fmt: skip
    pending = s.sql("SELECT count(*) FROM deployments WHERE status <> 'running'")
    assert pending == 0, f"{pending} deployments did not start: the row measures those that fit"
    return load_figures(load)


def _mixed_on(s: Served, cluster: str, options: Options) -> Figures:
    path = f"/api/v1/clusters/{cluster}/deployments"
    preempted = [0]

    def count() -> None:
        preempted[0] = int(s.sql(PREEMPTED_SQL, cluster))

    load = _loaded(
        s, options, path, method="POST", headers={"Cookie": f"session={s.cookie}"}, body=MIXED,
        connections=options.concurrency, between=count,
    )  # fmt: skip
    evictions = int(s.sql(PREEMPTED_SQL, cluster)) - preempted[0]
    return load_figures(load) | {"preempting": f"{evictions / load.requests:.0%}"}


def create_preempting(s: Served, options: Options) -> Figures:
    org = s.account.organization("bench")
    return _mixed_on(s, s.account.cluster(org, "full", 64, 256, 0), options)


def create_backlog(s: Served, options: Options) -> Figures:
    """The mixed creations on an empty 64-cpu cluster, then behind 1,000 running and 10,000
    pending deployments (inserted by SQL, as bench.api_creations does)."""
    from bench.api_creations import BACKLOG_COUNTERS_SQL, BACKLOG_SQL, PENDING, RUNNING

    org = s.account.organization("bench")
    empty = _mixed_on(s, s.account.cluster(org, "empty", 64, 256, 0), options)
    cluster = s.account.cluster(org, "backlog", 1000, 4000, 0)
    params = {"org": org, "cluster": cluster, "running": RUNNING, "total": RUNNING + PENDING}
    with connect(s.database, autocommit=False) as conn:  # rows and counters: one transaction
        conn.execute(BACKLOG_SQL.encode(), params | {"user": s.account.user_id})
        conn.execute(BACKLOG_COUNTERS_SQL.encode(), (RUNNING * 1000, RUNNING, PENDING, cluster))
    s.sql("ANALYZE deployments")
    backlog = _mixed_on(s, cluster, options)
    ratio = float(str(backlog["req/s"])) / float(str(empty["req/s"]))
    return {
        "empty req/s": empty["req/s"],
        "backlog req/s": backlog["req/s"],
        "backlog/empty": ratio,
    }


def intake(s: Served, options: Options) -> Figures:
    path = f"/api/v1/deployments/{_running_deployment(s)}/predict"
    headers = {"Cookie": f"session={s.cookie}", **ASYNC}
    load = _loaded(
        s, options, path, method="POST", headers=headers, body=PREDICT_BODY,
        connections=options.concurrency,
    )  # fmt: skip
    return load_figures(load)


def sync_predict(s: Served, options: Options) -> Figures:
    path = f"/api/v1/deployments/{_running_deployment(s)}/predict"
    headers = {"Cookie": f"session={s.cookie}"}
    load = _loaded(
        s, options, path, method="POST", headers=headers, body=PREDICT_BODY, connections=1
    )
    return load_figures(load)


def me(s: Served, options: Options) -> Figures:
    for name in ("Bench Org A", "Bench Org B"):  # /me answers a realistic body
        s.account.organization(name)
    headers = {"Cookie": f"session={s.cookie}"}
    load = _loaded(s, options, "/api/v1/auth/me", headers=headers, connections=options.concurrency)
    return load_figures(load)


def _async_predict(s: Served, deployment: str) -> bytes:
    path = f"/api/v1/deployments/{deployment}/predict"
    raw = request("POST", path, s.port, cookie=s.cookie, body=b'{"input": "hello"}')
    return raw.replace(b"\r\n\r\n", b"\r\nAsync-Mode: true\r\n\r\n", 1)


def _until_done(s: Served, deployment: str, total: int, start: float, limit: float = 180) -> float:
    while int(s.sql(DONE_SQL, deployment)) < total:
        if time.perf_counter() - start > limit:
            raise RuntimeError(f"not all {total} predictions completed within {limit:g} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def burst(s: Served, options: Options, total: int = 1000) -> Figures:
    deployment = _running_deployment(s)
    start = time.perf_counter()
    accepted = run(count_through(s.port, _async_predict(s, deployment), total, 64))
    done = _until_done(s, deployment, total, start)
    return {
        "accepted in s": accepted,
        "all done in s": done,
        "aim for all done": MOCK_DELAY_MAX + 2,
    }


def memory(s: Served, options: Options, total: int = 10_000) -> Figures:
    deployment = _running_deployment(s)
    raw = _async_predict(s, deployment)
    run(count_through(s.port, raw, 20, 4))  # the first use (imports, caches) is not "idle"
    idle = max(rss for rss, _ in s.rss_mib())
    accepted = run(count_through(s.port, raw, total, 64))
    in_flight = total + 20 - int(s.sql(DONE_SQL, deployment))
    peak = max(peak for _, peak in s.rss_mib())
    return {"RSS idle MiB": idle, "peak MiB": peak, "added MiB": peak - idle,
            "in flight at the end": in_flight, "accepted in s": accepted}  # fmt: skip


def growth(s: Served, options: Options, rows: int = 1_000_000) -> Figures:
    """Accept (async predicts for the duration) and drain (until the worker completed all of
    them) on an empty table, then with `rows` finished predictions in it."""
    deployment = _running_deployment(s)
    path = f"/api/v1/deployments/{deployment}/predict"
    headers = {"Cookie": f"session={s.cookie}", **ASYNC}

    def phase() -> tuple[float, float]:
        before = int(s.sql(DONE_SQL, deployment))
        start = time.perf_counter()
        load = wrk.drive(s.port, path, method="POST", headers=headers, body=PREDICT_BODY,
                         connections=options.concurrency, seconds=options.duration)  # fmt: skip
        _until_done(s, deployment, before + load.requests, start)
        return load.rate, load.requests / (time.perf_counter() - start)

    wrk.drive(
        s.port, path, method="POST", headers=headers, body=PREDICT_BODY, seconds=options.warmup
    )
    empty_accept, empty_done = phase()
    s.sql(FINISHED_SQL, rows, rows, deployment)
    s.sql("VACUUM ANALYZE predictions")
    full_accept, full_done = phase()
    return {
        "accept/s empty": empty_accept,
        "accept/s 1M": full_accept,
        "accept ratio": full_accept / empty_accept,
        "done/s empty": empty_done,
        "done/s 1M": full_done,
        "done ratio": full_done / empty_done,
    }


@dataclass(frozen=True)
class Row:
    measure: Callable[[Served, Options], Figures]
    settings: dict[str, str]
    bare_concurrency: int | None  # the bare endpoint at this concurrency; None: no comparison
    aim: str


ROWS = {
    "create": Row(create_fits, {}, 16, "creations/s >= 25% of bare"),
    "create-preempting": Row(create_preempting, {}, 16, "creations/s >= 15% of bare"),
    "create-backlog": Row(create_backlog, {}, None, "backlog/empty >= 0.9"),
    "intake": Row(intake, {}, 16, "202s/s >= 40% of bare"),
    "burst": Row(burst, {}, None, "accepted < 2 s; all done < 19 s"),
    "sync": Row(sync_predict, MOCK_FAST, 1, "p50 <= bare p50 + 5 ms"),
    "me": Row(me, {}, 16, "req/s >= 0.8 of bare"),
    "growth": Row(growth, MOCK_FAST, None, "accept and done with 1M >= 0.9 of empty"),
    "memory": Row(memory, {}, None, "idle < 150 MiB; added < 60 MiB"),
}
