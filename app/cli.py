"""The `mlops` console script: serve, worker, migrate."""

import argparse
import asyncio
import contextlib
import logging
import signal

import uvicorn

from app.core.config import Settings
from app.core.logging import configure_logging
from app.db.migrations import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.workers.notifier import Notifier
from app.workers.worker import Worker

logger = logging.getLogger(__name__)


def _migrate(settings: Settings) -> None:
    logger.info("applying migrations")
    upgrade_to_head(settings.database_url)


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    if not args.no_migrate:
        _migrate(settings)
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        # Client addresses are resolved by the app's own ProxyHeadersMiddleware, which honours
        # FORWARDED_ALLOW_IPS; resolving them twice would trust a forged X-Forwarded-For.
        proxy_headers=False,
        access_log=False,
        log_config=None,
    )


async def _work(settings: Settings) -> None:
    """A standalone worker: claims predictions from the shared database until SIGTERM/SIGINT,
    then hands its unfinished ones back."""
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    notifier = Notifier(settings.database_url)
    worker = Worker(settings, create_sessionmaker(engine), notifier)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await notifier.start()
    await worker.start()
    logger.info("worker started", extra={"worker_id": worker.id})
    try:
        await stopping.wait()
    finally:
        await worker.stop()
        await notifier.stop()
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps platform API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    commands.add_parser("migrate", help="bring the schema up to date (alembic upgrade head)")
    commands.add_parser("worker", help="run a prediction worker (as many as you like)")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        _migrate(settings)
    elif args.command == "worker":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_work(settings))
    else:
        _serve(settings, args)


if __name__ == "__main__":
    main()
