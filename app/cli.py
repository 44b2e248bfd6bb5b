"""The `mlops` console script: serve, migrate."""

import argparse
import logging

import uvicorn

from app.core.config import Settings
from app.core.logging import configure_logging
from app.db.migrations import upgrade_to_head

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps platform API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply migrations, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    commands.add_parser("migrate", help="bring the schema up to date (alembic upgrade head)")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "migrate":
        _migrate(settings)
    else:
        _serve(settings, args)


if __name__ == "__main__":
    main()
