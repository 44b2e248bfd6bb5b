"""The `mlops` console script: serve, worker, migrate, demo-seed.

Nothing here imports prometheus-client at module level: it decides at import whether it runs in
multiprocess mode, so `serve` must set `PROMETHEUS_MULTIPROC_DIR` before the app is imported.

A setup that cannot work (settings that do not validate, a database that is missing, unreachable
or not migrated) ends the command with one sentence on stderr and exit status 1, not a traceback:
`startup_problem` is the one place that turns such exceptions into words. Anything else still
raises, with its traceback: it is a bug to see, not a setup to fix.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from app.core.config import Settings
from app.core.errors import SetupError
from app.core.logging import configure_logging
from app.runtimes.catalog import MODELS

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps platform API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="API processes (default: WEB_CONCURRENCY, else one per core on PostgreSQL, "
        "1 on SQLite)",
    )
    serve.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    commands.add_parser("migrate", help="bring the schema up to date (alembic upgrade head)")
    worker = commands.add_parser("worker", help="run a prediction worker (as many as you like)")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve this worker's /metrics on this port"
    )
    worker.add_argument("--metrics-host", default="0.0.0.0")  # noqa: S104 - scraped from outside
    worker.add_argument(
        "--models",
        type=model_names,
        default=None,
        help="comma-separated models whose predictions this worker runs (default: every model), "
        "for pools that cannot load the others",
    )
    seed = commands.add_parser(
        "demo-seed",
        help="create the deployment DEFAULT_DEPLOYMENT_ID names, for a demo of /predict",
    )
    seed.add_argument("--model", choices=sorted(MODELS), default="mock")
    return parser


def model_names(value: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    unknown = sorted(names - MODELS.keys())
    if unknown or not names:
        wrong = f"unknown model(s) {', '.join(unknown)}" if unknown else "no model named"
        raise argparse.ArgumentTypeError(f"{wrong}; the models are: {', '.join(MODELS)}")
    return names


def serving_processes(settings: Settings, requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    if settings.web_concurrency is not None:
        return settings.web_concurrency
    if settings.is_sqlite:
        return 1
    return len(os.sched_getaffinity(0)) or 1


@contextlib.contextmanager
def metrics_directory(configured: str | None, processes: int) -> Iterator[str | None]:
    """The multiprocess metrics directory of one run: the configured one emptied (files of an
    earlier run would be summed in), else a fresh one removed at exit; none for one process."""
    if configured is None and processes == 1:
        yield None
        return
    if configured is not None:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="mlops-metrics-"))
    # prometheus-client reads the directory from the environment, in every process uvicorn starts.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    try:
        yield str(path)
    finally:
        if configured is None:
            shutil.rmtree(path, ignore_errors=True)


# The database URLs the service can use, as `Settings` normalizes them: backend, then driver.
_DRIVERS = {"postgresql": ("psycopg", "psycopg_async"), "sqlite": ("aiosqlite",)}
_URL_FORMS = "postgresql://user:password@host:5432/name or sqlite:///path/to/file.db"


def check_database_url(url: str) -> None:
    """Refuse a URL no engine here can open, before anything tries to (which would fail deep in
    SQLAlchemy's plugin loader or on a missing driver module), and a SQLite file that cannot
    have a directory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SetupError(f"DATABASE_URL is not a database URL; use {_URL_FORMS}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if driver not in _DRIVERS.get(backend, ()):
        raise SetupError(
            f"DATABASE_URL has the scheme {parsed.drivername}://, which this service cannot use; "
            f"use {_URL_FORMS}"
        )
    if backend == "sqlite":
        from app.db.session import ensure_sqlite_directory

        try:
            ensure_sqlite_directory(url)
        except OSError as exc:
            raise SetupError(
                f"cannot create the directory of the SQLite database {parsed.database} "
                f"({exc.strerror or exc}); point DATABASE_URL at a writable place"
            ) from None


_MISSING_DATABASE = re.compile(r'database "(?P<name>[^"]*)" does not exist')
_MISSING_ROLE = re.compile(r'role "(?P<name>[^"]*)" does not exist')
_BAD_PASSWORD = re.compile(r'password authentication failed for user "(?P<name>[^"]*)"')
# libpq's and psycopg's words for a server that cannot be reached, and ours for each.
_UNREACHABLE = {
    "Connection refused": "connection refused",
    "failed to resolve host": "unknown host",
    "could not translate host name": "unknown host",
    "Name or service not known": "unknown host",
    "No route to host": "no route to host",
    "Network is unreachable": "network unreachable",
    "timeout expired": "timed out",
    "timed out": "timed out",
}


def _client_command(program: str, url: URL, name: str, *, as_user: bool = True) -> str:
    """`createdb -h 127.0.0.1 -p 5432 -U postgres mlops`: the server (and user) of `url`."""
    command = [program]
    if url.host:
        command += ["-h", url.host]
    if url.port:
        command += ["-p", str(url.port)]
    if url.username and as_user:
        command += ["-U", url.username]
    return shlex.join([*command, name])


def _postgres_problem(url: URL, error: str) -> str | None:
    server = f"{url.host or 'localhost'}:{url.port or 5432}"
    if match := _MISSING_DATABASE.search(error):
        name = url.database or match["name"]
        return (
            f'the database "{name}" does not exist on the PostgreSQL server at {server}; '
            f"create it with: {_client_command('createdb', url, name)}"
        )
    if match := _MISSING_ROLE.search(error):
        return (
            f'the PostgreSQL server at {server} has no role "{match["name"]}"; fix the user in '
            "DATABASE_URL, or create the role as a superuser: "
            f"{_client_command('createuser', url, match['name'], as_user=False)}"
        )
    if match := _BAD_PASSWORD.search(error):
        return (
            f'the PostgreSQL server at {server} refused the password of user "{match["name"]}"; '
            "fix the password in DATABASE_URL"
        )
    for words, reason in _UNREACHABLE.items():
        if words in error:
            return (
                f"cannot reach the PostgreSQL server at {server} ({reason}); is it running, "
                "and are the host and port in DATABASE_URL right?"
            )
    return None


def _settings_problems(exc: ValidationError) -> str:
    """One line per invalid setting, named as its environment variable."""
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        name = ".".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}: {message}" if name else message)
    return "\n".join(lines)


def startup_problem(exc: BaseException, database_url: str | None) -> str | None:
    """What is wrong with the setup, in one sentence (one line per invalid setting), if `exc` is
    one of the known ways a setup fails; None for anything else, which must keep its traceback."""
    if isinstance(exc, SetupError):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return _settings_problems(exc)
    if isinstance(exc, OperationalError) and database_url is not None:
        url = make_url(database_url)
        error = str(exc.orig)
        if url.get_backend_name() == "postgresql":
            return _postgres_problem(url, error)
        if "unable to open database file" in error:
            return f"cannot open the SQLite database {url.database}: is its directory writable?"
    return None


def _migrate(settings: Settings) -> None:
    from app.db.migrations import upgrade_to_head

    logger.info("applying migrations")
    upgrade_to_head(settings.database_url)


async def _check_schema(settings: Settings) -> None:
    """Connect once (a missing or unreachable database fails here, before uvicorn starts) and
    warn when the schema is behind: `/ready` answers 503 until the migration has run."""
    from app.db.migrations import SchemaNotAtHead, require_head
    from app.db.session import create_engine

    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        await require_head(engine)
    except SchemaNotAtHead as exc:
        logger.warning("%s; /ready answers 503 until then", exc)
    finally:
        await engine.dispose()


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    if args.no_migrate:
        asyncio.run(_check_schema(settings))
    else:
        _migrate(settings)
    processes = serving_processes(settings, args.workers)
    if settings.is_sqlite and processes > 1:
        logger.warning("several processes on SQLite: writers wait for each other's file lock")
    with metrics_directory(settings.prometheus_multiproc_dir, processes):
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=args.port,
            workers=processes,
            # Client addresses are resolved by the app's own ProxyHeadersMiddleware, which honours
            # FORWARDED_ALLOW_IPS; resolving them twice would trust a forged X-Forwarded-For.
            proxy_headers=False,
            access_log=False,
            log_config=None,
        )


async def _work(settings: Settings, args: argparse.Namespace) -> None:
    """A standalone worker: claims predictions from the shared database until SIGTERM/SIGINT,
    then hands its unfinished ones back."""
    from prometheus_client import start_http_server

    from app.core.metrics import process_registry
    from app.db.migrations import require_head
    from app.db.notifier import Notifier
    from app.db.session import create_engine, create_sessionmaker
    from app.workers.worker import Worker

    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    try:
        # On a schema behind the code, every claim would fail, once a second, forever.
        await require_head(engine)
    except BaseException:
        await engine.dispose()
        raise
    if args.metrics_port is not None:
        registry = process_registry(settings.prometheus_multiproc_dir)
        start_http_server(args.metrics_port, args.metrics_host, registry)
    notifier = Notifier(settings.database_url)
    worker = Worker(settings, create_sessionmaker(engine), notifier, args.models)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await notifier.start()
    await worker.start()
    models = sorted(args.models) if args.models else "all"
    logger.info("worker started", extra={"worker_id": worker.id, "models": models})
    try:
        await stopping.wait()
    finally:
        await worker.stop()
        await notifier.stop()
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    database_url = None
    try:
        settings = Settings()
        database_url = settings.database_url
        configure_logging(settings.log_level)
        check_database_url(database_url)
        _run(settings, args)
    except Exception as exc:
        problem = startup_problem(exc, database_url)
        if problem is None:
            raise
        for line in problem.splitlines():
            print(f"mlops {args.command}: {line}", file=sys.stderr)
        raise SystemExit(1) from None


def _run(settings: Settings, args: argparse.Namespace) -> None:
    if args.command == "migrate":
        _migrate(settings)
    elif args.command == "worker":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_work(settings, args))
    elif args.command == "demo-seed":
        from app.services import demo

        print(asyncio.run(demo.seed_database(settings, args.model)))
    else:
        _serve(settings, args)


if __name__ == "__main__":
    main()
