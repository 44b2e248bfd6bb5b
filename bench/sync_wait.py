"""What waiting for a synchronous prediction costs: `POST .../predict` of the mock model with no
delay (`MOCK_DELAY_MIN=MOCK_DELAY_MAX=0`), one request at a time, against the bare endpoint of
bench/request_path.py (one indexed query), in one run.

Run from the project root: `python -m bench.sync_wait [--duration 6]`. Creates the database
`mlops_bench_sync_wait`, serves the real app (uvicorn, 1 process, its in-process worker) and the
bare app, signs up a user with a running mock deployment, drives each target at concurrency 1
with the harness's keep-alive client, prints the p50/p99 of both and the difference of the p50s
(the aim: at most 5 ms), then stops the servers and drops the database. A synchronous predict is
an insert, a claim, the model call, the outcome's commit, and the wake-up of the waiting request.
"""

import argparse
import json
import uuid

from bench.harness import (
    Servers,
    app_env,
    databases,
    drive,
    machine_line,
    request,
    run,
    server_stack,
    signed_up,
    table,
    uvicorn_command,
)

DB_NAME = "mlops_bench_sync_wait"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per target")
    args = parser.parse_args()

    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, WORKER_IN_PROCESS="true", MOCK_DELAY_MIN="0", MOCK_DELAY_MAX="0")
        app_port = servers.start(lambda port: uvicorn_command("app.main:app", port), env)
        bare_port = servers.start(
            lambda port: uvicorn_command("bench.request_path:bare_app", port),
            {"BENCH_DATABASE_URL": url},
            ready=None,
        )
        with signed_up(app_port) as account:
            organization = account.organization("Bench Org")
            cluster = account.cluster(organization, "pool", 8, 8, 0)
            deployment = account.deployment(cluster, "echo", "mock")
            assert deployment["status"] == "running", deployment
            user_id, cookie = str(uuid.UUID(account.user_id)), account.cookie
        body = json.dumps({"input": "hello"}).encode()
        predict = request(
            "POST",
            f"/api/v1/deployments/{deployment['id']}/predict",
            app_port,
            cookie=cookie,
            body=body,
        )
        bare = request("GET", f"/users/{user_id}", bare_port)
        samples = {}
        for name, port, raw in (("bare", bare_port, bare), ("sync predict", app_port, predict)):
            run(drive(port, lambda raw=raw: raw, 1, args.warmup))
            samples[name] = run(drive(port, lambda raw=raw: raw, 1, args.duration))

    print(
        f"{machine_line()}; uvicorn 1 worker, {server_stack()}; {args.duration:g} s per target, "
        "concurrency 1\n"
    )
    print(
        table(
            ["target", "req/s", "p50 ms", "p99 ms"],
            [
                [name, f"{s.rate:.0f}", f"{s.ms(0.5):.2f}", f"{s.ms(0.99):.2f}"]
                for name, s in samples.items()
            ],
        )
    )
    gap = samples["sync predict"].ms(0.5) - samples["bare"].ms(0.5)
    print(f"\np50 of a synchronous predict minus the bare p50: {gap:.2f} ms (aim: at most 5 ms)")


if __name__ == "__main__":
    main()
