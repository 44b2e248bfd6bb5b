"""Alembic driven from code: `mlops migrate`, `mlops serve` and `/ready` share one config."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import SetupError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # The application has configured logging already; alembic.ini must not replace it.
    config.attributes["configure_logger"] = False
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        revision: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return revision


class SchemaNotAtHead(SetupError):
    def __init__(self, current: str | None, head: str | None) -> None:
        self.current, self.head = current, head
        where = f"it is at {current}" if current else "it was never migrated"
        super().__init__(
            f"the database schema is not at head ({where}, head is {head}); run `mlops migrate`"
        )


def _schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    revision: str | None = conn.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


async def require_head(engine: AsyncEngine) -> None:
    """Raise `SchemaNotAtHead` unless the schema is at the latest migration; a database never
    migrated (no `alembic_version` table) counts as revision None."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_schema_revision)
    head = head_revision()
    if current != head:
        raise SchemaNotAtHead(current, head)
