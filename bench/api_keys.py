"""What an API key costs against a session cookie, on the same routes of the same server.

Run from the project root: `python -m bench.api_keys [--duration 5] [--rounds 3]`. Creates the
database `mlops_bench_api_keys`, serves the app with uvicorn (1 process, no worker), signs up an
admin with an organization, a cluster and a deployment, creates a developer key, then drives two
routes with wrk, by cookie and by key in alternating rounds (the machine is shared: each ratio
compares runs made side by side): `GET /api/v1/auth/me` (authentication alone) and
`GET /api/v1/deployments/{id}` (authentication and the tenancy query). Prints a markdown table of
requests per second and the key/cookie ratio, then stops the server and drops the database.
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

DB_NAME = "mlops_bench_api_keys"
CONNECTIONS = 16


def main() -> None:
    args = side_by_side_options(__doc__)
    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, WORKER_IN_PROCESS="false")
        port = servers.start(lambda p: uvicorn_command("app.main:app", p), env, ready="/health")
        with signed_up(port, "keyholder") as admin:
            org = admin.organization("bench")
            cluster = admin.cluster(org, "pool", 8, 32, 0)
            deployment = admin.deployment(cluster, "echo", "mock")["id"]
            key = admin.post(f"/organizations/{org}/api-keys", {"name": "b", "role": "developer"})
            callers = {
                "cookie": {"Cookie": f"session={admin.cookie}"},
                "key": {"Authorization": f"Bearer {key['key']}"},
            }
            rows = []
            for path in ("/api/v1/auth/me", f"/api/v1/deployments/{deployment}"):
                medians = side_by_side(
                    args.rounds,
                    {
                        caller: functools.partial(
                            wrk.rate,
                            port,
                            path,
                            headers=headers,
                            connections=CONNECTIONS,
                            seconds=args.duration,
                        )
                        for caller, headers in callers.items()
                    },
                )
                cookie, key_rate = medians["cookie"], medians["key"]
                label = path.replace(deployment, "{id}")
                rows.append((label, f"{cookie:.0f}", f"{key_rate:.0f}", f"{key_rate / cookie:.2f}"))
    print(machine_line())
    print(server_stack())
    print(table(("route", "cookie req/s", "key req/s", "key/cookie"), rows, "lrrr"))


if __name__ == "__main__":
    main()
