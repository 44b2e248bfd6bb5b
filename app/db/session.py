"""Async engine and sessions for PostgreSQL (psycopg 3) and the embedded SQLite default."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import normalize_database_url


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers work beside the one writer.
    # The driver's own transaction handling is turned off so that `_begin_immediate` decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    """SQLite has no row locks: every transaction takes the write lock up front, so transactions
    that read, then write (scheduling passes, last-admin checks) are serialized, not interleaved."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """Each process holds at most `pool_size + max_overflow` connections (DB_POOL_SIZE and
    DB_MAX_OVERFLOW): keep processes x that under PostgreSQL's max_connections."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False
    )


def single_statement_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for connections that run one read-only statement and close: the session
    lookup that every request makes. PostgreSQL runs them in autocommit: one round trip instead of
    BEGIN, the query and ROLLBACK, and one statement sees one snapshot either way. SQLite keeps its
    `BEGIN IMMEDIATE` transactions."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request. Services commit their own transaction before the response is
    built, so a 2xx is never sent for work that did not persist; whatever is left is rolled back."""
    async with factory() as session:
        yield session
