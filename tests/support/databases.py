"""Test databases: a fresh PostgreSQL database per test session (migrated by Alembic), and an
SQLite file for the tests that also run on the embedded default. Tables are emptied per test."""

import os
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.base import Base
from app.db.migrations import upgrade_to_head

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def create_postgres_database() -> tuple[str, str]:
    """Create a uniquely named database and return (its name, its URL)."""
    name = f"mlops_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade_to_head(url)
    return name, url


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_sqlite_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'test.db'}"
    upgrade_to_head(url)
    return url


async def empty_all_tables(engine: AsyncEngine) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))
