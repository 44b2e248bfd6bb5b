"""The `mlops` console script: serve, worker, migrate.

Nothing here imports prometheus-client at module level: it decides at import whether it runs in
multiprocess mode, so `serve` must set `PROMETHEUS_MULTIPROC_DIR` before the app is imported.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.core.config import Settings
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


def _migrate(settings: Settings) -> None:
    from app.db.migrations import upgrade_to_head

    logger.info("applying migrations")
    upgrade_to_head(settings.database_url)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    if not args.no_migrate:
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
    from app.db.notifier import Notifier
    from app.db.session import create_engine, create_sessionmaker
    from app.workers.worker import Worker

    if args.metrics_port is not None:
        registry = process_registry(settings.prometheus_multiproc_dir)
        start_http_server(args.metrics_port, args.metrics_host, registry)
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
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
    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        _migrate(settings)
    elif args.command == "worker":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_work(settings, args))
    else:
        _serve(settings, args)


if __name__ == "__main__":
    main()
