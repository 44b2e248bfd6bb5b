"""What the web console costs the server: a page, and what one open cluster page asks every
3 seconds, against /health on the same server.

Run from the project root: `python -m bench.console [--duration 5] [--rounds 3]`. Creates the
database `mlops_bench_console`, serves the app with uvicorn (1 process, no worker), signs up an
admin with an organization, a cluster of 8 CPU with 12 deployments (4 running, 8 pending, so the
queue is explained and estimated), then drives with wrk, in alternating rounds (the machine is
shared): `GET /health` (the floor: no database), a console page (`/console/clusters/{id}`: a
template, no database), and the five reads of the cluster page's poll. Prints requests per second
for each, and how many open cluster pages one process keeps up with (one poll every 3 s), then
stops the server and drops the database.
"""

import functools

from bench.harness import (
    Servers,
    app_env,
    databases,
    machine_line,
    server_stack,
    side_by_side,
    side_by_side_options,
    signed_up,
    table,
    uvicorn_command,
)
from bench.hot_paths import wrk

DB_NAME = "mlops_bench_console"
CONNECTIONS = 16
POLL_SECONDS = 3


def main() -> None:
    args = side_by_side_options(__doc__)
    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, WORKER_IN_PROCESS="false")
        port = servers.start(lambda p: uvicorn_command("app.main:app", p), env, ready="/health")
        with signed_up(port, "consoler") as admin:
            org = admin.organization("bench")
            cluster = admin.cluster(org, "pool", 8, 32, 0)
            for number in range(12):
                admin.post(
                    f"/clusters/{cluster}/deployments",
                    {
                        "name": f"d{number}",
                        "resources": {"cpu": 2, "ram_gb": 1, "gpu": 0},
                        "priority": number % 4,
                    },
                )
            routes = {
                "GET /health": "/health",
                "GET /console/clusters/{id} (page)": f"/console/clusters/{cluster}",
                "poll: cluster": f"/api/v1/clusters/{cluster}",
                "poll: running": f"/api/v1/clusters/{cluster}/deployments?status=running&limit=200",
                "poll: preempting": (
                    f"/api/v1/clusters/{cluster}/deployments?status=preempting&limit=200"
                ),
                "poll: pending": f"/api/v1/clusters/{cluster}/deployments?status=pending&limit=200",
                "poll: events": f"/api/v1/clusters/{cluster}/events?limit=100",
            }
            headers = {"Cookie": f"session={admin.cookie}"}
            medians = side_by_side(
                args.rounds,
                {
                    label: functools.partial(
                        wrk.rate,
                        port,
                        path,
                        headers=headers,
                        connections=CONNECTIONS,
                        seconds=args.duration,
                    )
                    for label, path in routes.items()
                },
            )
    health = medians["GET /health"]
    rows = [(label, f"{rate:.0f}", f"{rate / health:.2f}") for label, rate in medians.items()]
    poll_seconds = sum(1 / rate for label, rate in medians.items() if label.startswith("poll"))
    print(machine_line())
    print(server_stack())
    print(table(("request", "req/s", "vs /health"), rows, "lrr"))
    print(
        f"\nOne poll of the cluster page: {poll_seconds * 1000:.1f} ms of one process; "
        f"one process keeps up with about {POLL_SECONDS / poll_seconds:.0f} open cluster pages "
        f"(a poll every {POLL_SECONDS} s)."
    )


if __name__ == "__main__":
    main()
