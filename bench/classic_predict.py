"""What the classic `/predict` costs against the platform's own predict route, on the same
deployment of the same server.

Run from the project root: `python -m bench.classic_predict [--duration 5] [--rounds 3]`. Creates
the database `mlops_bench_classic`, builds an organization with a cluster, a mock deployment, a
developer API key and one finished prediction through a first server, then serves the app again
with DEFAULT_DEPLOYMENT_ID set to that deployment and PUBLIC_PREDICT=true (1 process, no worker:
asynchronous predictions are stored and queued, the path every call takes before a worker runs
the model). wrk drives, in
alternating rounds: an asynchronous predict by key on the platform's route and on `POST /predict`,
and anonymously on `POST /predict` (the public caller); then the result of one prediction by key on
`GET /api/v1/predictions/{id}` and on `GET /predict/{id}`. Prints requests per second and the
ratios to the platform's route, then stops the servers and drops the database.
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

DB_NAME = "mlops_bench_classic"
CONNECTIONS = 16
BODY = '"{\\"input\\": \\"hello\\"}"'


def main() -> None:
    args = side_by_side_options(__doc__)
    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, WORKER_IN_PROCESS="false")
        # The builder runs a worker, for one finished prediction to read; it is stopped before
        # the measured server starts, so no model runs during the measurement.
        builder_env = env | {
            "WORKER_IN_PROCESS": "true",
            "MOCK_DELAY_MIN": "0",
            "MOCK_DELAY_MAX": "0",
        }
        builder = servers.start(
            lambda p: uvicorn_command("app.main:app", p), builder_env, ready="/health"
        )
        with signed_up(builder, "classic") as admin:
            org = admin.organization("bench")
            cluster = admin.cluster(org, "pool", 8, 32, 0)
            deployment = admin.deployment(cluster, "echo", "mock")["id"]
            key = admin.post(f"/organizations/{org}/api-keys", {"name": "b", "role": "developer"})
            by_key = {"Authorization": f"Bearer {key['key']}"}
            prediction = admin.client.post(
                f"/api/v1/deployments/{deployment}/predict", json={"input": "x"}
            ).json()["prediction_id"]
        servers.stop()
        classic_env = env | {"DEFAULT_DEPLOYMENT_ID": deployment, "PUBLIC_PREDICT": "true"}
        port = servers.start(
            lambda p: uvicorn_command("app.main:app", p), classic_env, ready="/health"
        )
        asynchronous = {"Async-Mode": "true"}
        platform = f"/api/v1/deployments/{deployment}/predict"
        runs = {
            "predict": [
                ("POST /api/v1/deployments/{id}/predict, key", platform, by_key | asynchronous),
                ("POST /predict, key", "/predict", by_key | asynchronous),
                ("POST /predict, anonymous", "/predict", asynchronous),
            ],
            "result": [
                ("GET /api/v1/predictions/{id}, key", f"/api/v1/predictions/{prediction}", by_key),
                ("GET /predict/{id}, key", f"/predict/{prediction}", by_key),
            ],
        }
        rows = []
        for kind, variants in runs.items():
            method, body = ("POST", BODY) if kind == "predict" else ("GET", None)
            medians = side_by_side(
                args.rounds,
                {
                    label: functools.partial(
                        wrk.rate,
                        port,
                        path,
                        method=method,
                        headers=headers,
                        body=body,
                        connections=CONNECTIONS,
                        seconds=args.duration,
                    )
                    for label, path, headers in variants
                },
            )
            baseline = medians[variants[0][0]]
            rows += [(label, f"{r:.0f}", f"{r / baseline:.2f}") for label, r in medians.items()]
    print(machine_line())
    print(server_stack())
    print(table(("route, caller", "req/s", "ratio to the platform's route"), rows, "lrr"))


if __name__ == "__main__":
    main()
