"""What the app's request path costs: authenticated `GET /api/v1/auth/me` against a bare Starlette
endpoint that runs one indexed query.

Run from the project root: `python -m bench.request_path [--duration 6] [--concurrency 1 16]`.
Creates the database `mlops_bench_request_path`, serves the real app and the bare app with uvicorn
(1 process each, the same settings), signs up a user with two organizations (so that /me answers a
realistic body), drives both from this process with the harness's closed-loop keep-alive client,
prints markdown tables (req/s, latency, and me/bare per concurrency), then stops the servers and
drops the database.
"""

import argparse
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.db.session import create_engine
from bench.harness import (
    Sample,
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

DB_NAME = "mlops_bench_request_path"
USER_QUERY = text("SELECT id, username, email, created_at FROM users WHERE id = :id")


# --- The bare endpoint: what one indexed query costs without the app's stack around it ---


@contextlib.asynccontextmanager
async def _bare_lifespan(app: Starlette) -> AsyncIterator[None]:
    # The app's own engine factory: the same driver (psycopg 3 async) and pool settings.
    app.state.engine = create_engine(os.environ["BENCH_DATABASE_URL"])
    yield
    await app.state.engine.dispose()


async def _bare_user(request: Request) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as conn:
        row = (await conn.execute(USER_QUERY, {"id": request.path_params["user_id"]})).one()
    body = {**row._mapping, "id": str(row.id), "created_at": row.created_at.isoformat()}
    return JSONResponse(body)


bare_app = Starlette(routes=[Route("/users/{user_id:uuid}", _bare_user)], lifespan=_bare_lifespan)


# --- The measurement ---


async def measure(
    targets: dict[str, tuple[int, bytes]], concurrencies: list[int], warmup: float, duration: float
) -> dict[tuple[str, int], Sample]:
    """Per concurrency, each target in turn. The warm-up fills the connection pool, SQLAlchemy's
    compiled cache and psycopg's prepared statements, none of which a long-running server pays
    per request."""
    samples = {}
    for concurrency in concurrencies:
        for name, (port, raw) in targets.items():
            await drive(port, always(raw), concurrency, warmup)
            samples[name, concurrency] = await drive(port, always(raw), concurrency, duration)
    return samples


def always(raw: bytes) -> Callable[[], bytes]:
    """The same request every time."""
    return lambda: raw


def report(samples: dict[tuple[str, int], Sample], duration: float) -> str:
    header = (
        f"{machine_line()}; uvicorn 1 worker, {server_stack()}; {duration:g} s per cell; "
        "client: this process, raw asyncio sockets"
    )
    cells = table(
        ["target", "concurrency", "req/s", "p50 ms", "p99 ms"],
        [
            [name, c, f"{s.rate:.0f}", f"{s.ms(0.5):.2f}", f"{s.ms(0.99):.2f}"]
            for (name, c), s in samples.items()
        ],
    )
    concurrencies = sorted({c for _, c in samples})
    ratios = table(
        ["concurrency", "me/bare req/s"],
        [[c, f"{samples['me', c].rate / samples['bare', c].rate:.2f}"] for c in concurrencies],
        align="rr",
    )
    return f"{header}\n\n{cells}\n\n{ratios}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    with databases(DB_NAME) as [url], Servers() as servers:
        app_port = servers.start(lambda port: uvicorn_command("app.main:app", port), app_env(url))
        bare_port = servers.start(
            lambda port: uvicorn_command("bench.request_path:bare_app", port),
            {"BENCH_DATABASE_URL": url},
            ready=None,  # the bare app has no /ready: its port accepting connections will do
        )
        with signed_up(app_port) as account:
            for name in ("Bench Org A", "Bench Org B"):
                account.organization(name)
            me = account.client.get("/api/v1/auth/me").raise_for_status().json()
            assert len(me["organizations"]) == 2, me
            user_id, cookie = str(uuid.UUID(me["id"])), account.cookie  # a UUID, in a request line
        targets = {
            "bare": (bare_port, request("GET", f"/users/{user_id}", bare_port)),
            "me": (app_port, request("GET", "/api/v1/auth/me", app_port, cookie=cookie)),
        }
        samples = run(measure(targets, args.concurrency, args.warmup, args.duration))
    print(report(samples, args.duration))


if __name__ == "__main__":
    main()
