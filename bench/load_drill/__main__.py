"""`python -m bench.load_drill`: the drill against the production topology on this machine
(see the package's docstring)."""

from __future__ import annotations

import argparse
import os
import sys

import bench.load_drill as load_drill
from bench.load_drill import DB_NAME, drill, service_settings


def main() -> None:
    from bench.harness import (
        CpuReading,
        Servers,
        app_env,
        cores,
        cpu_reading,
        databases,
        family,
        machine_line,
        module_command,
        postgres_backends,
        run,
        table,
    )
    from tests.support.books import check_books  # the suite's books, checked in the database

    parser = argparse.ArgumentParser(description=(load_drill.__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of traffic")
    parser.add_argument("--think", type=float, nargs=2, default=[0.2, 0.8], help="min max, s")
    parser.add_argument("--api-workers", type=int, default=4, help="`mlops serve --workers`")
    parser.add_argument("--workers", type=int, default=2, help="`mlops worker` processes")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()

    with databases(DB_NAME) as [url], Servers() as servers:
        env = app_env(url, **service_settings(url))
        workers = [
            servers.spawn(module_command("app.cli", "worker"), env) for _ in range(args.workers)
        ]
        port = servers.start(
            lambda p: module_command(
                "app.cli",
                "serve",
                "--no-migrate",
                "--port",
                str(p),
                "--workers",
                str(args.api_workers),
            ),
            env,
        )
        api = servers.procs[-1].pid

        def groups() -> dict[str, set[int]]:
            return {
                "api": family(api),
                "workers": {w.pid for w in workers},
                "postgres": postgres_backends(DB_NAME),
                "client": {os.getpid()},
            }

        readings: dict[str, CpuReading] = {}

        def read(moment: str) -> None:
            readings[moment] = cpu_reading(**groups())

        report = run(
            drill(
                f"http://127.0.0.1:{port}",
                users=args.users,
                orgs=args.orgs,
                duration=args.duration,
                think=(args.think[0], args.think[1]),
                seed=args.seed,
                on_traffic=read,
            )
        )
        used = cores(readings["start"], readings["end"], report.elapsed)
        check_books(url)

    print(f"{machine_line()}; {args.api_workers} API processes, {args.workers} workers\n")
    print(report.render() + "\n")
    print("Cores used during the traffic (`other`: the rest of the machine):\n")
    print(table(list(used), [[f"{v:.2f}" for v in used.values()]], "r" * len(used)))
    if report.server_errors or report.unexpected or report.tally.transport_errors:
        sys.exit("FAILED: errors above")
    if report.finished.statuses.keys() != {"completed"} or report.accounting:
        sys.exit("FAILED: predictions or books above")


if __name__ == "__main__":
    main()
