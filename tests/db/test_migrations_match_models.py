"""The schema the Alembic migrations build is the one the models declare, on PostgreSQL.

The partial indexes (the queue, the running set, the deployments waiting for dependencies) are
written twice, in `app/models/deployment.py` and in `alembic/versions/`, and the SQL mirrors of the
scheduler only use them if their columns, directions and WHERE clauses agree. Two comparisons:

1. Alembic's autogenerate (`compare_metadata`, with types and server defaults) finds nothing to
   change. It compares tables, columns, types, nullability, defaults, foreign keys, unique
   constraints and index columns (DESC included), but neither index WHERE clauses nor CHECK
   constraints (`test_the_catalog_comparison_sees_a_partial_index_predicate` shows one it misses).
2. So the models' DDL is also run, as SQLAlchemy compiles it, into a scratch schema of the same
   database (in a transaction that is rolled back), and PostgreSQL's own rendering of both
   schemas is compared: `pg_get_indexdef` of every index, `pg_get_constraintdef` of every
   constraint, `format_type` / NOT NULL / default of every column. PostgreSQL normalizes both
   sides the same way (casts, parentheses, quoting), so no text munging is needed beyond dropping
   the schema name from `CREATE INDEX ... ON <schema>.<table>`. Column order is not compared: the
   models and the migrations may add columns in different orders, and nothing reads them by
   position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pprint import pformat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, Index, MetaData, create_engine, text

import app.models  # noqa: F401 - registers every table on Base.metadata
from app.core.config import normalize_database_url
from app.db.base import Base
from app.db.migrations import head_revision

SCRATCH = "models_ddl"


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> Iterator[Engine]:
    built = create_engine(normalize_database_url(postgres_url))
    yield built
    built.dispose()


@dataclass(frozen=True)
class Catalog:
    indexes: dict[tuple[str, str], str]
    constraints: dict[tuple[str, str], tuple[str, str]]
    columns: dict[tuple[str, str], tuple[str, bool, str | None]]


def read_catalog(conn: Connection, schema: str) -> Catalog:
    """PostgreSQL's rendering of one schema's tables, with the schema itself as the search path so
    that references between its tables come out unqualified."""
    conn.execute(text(f"SET LOCAL search_path TO {schema}"))
    params = {"schema": schema}
    indexes = {
        (r.table, r.name): r.definition.replace(f" ON {schema}.", " ON ")
        for r in conn.execute(
            text(
                """
                SELECT t.relname AS table, i.relname AS name,
                       pg_get_indexdef(i.oid) AS definition
                FROM pg_index x
                JOIN pg_class i ON i.oid = x.indexrelid
                JOIN pg_class t ON t.oid = x.indrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = :schema AND t.relname <> 'alembic_version'
                """
            ),
            params,
        )
    }
    constraints = {
        (r.table, r.name): (r.kind, r.definition)
        for r in conn.execute(
            text(
                """
                SELECT t.relname AS table, c.conname AS name, c.contype::text AS kind,
                       pg_get_constraintdef(c.oid) AS definition
                FROM pg_constraint c
                JOIN pg_class t ON t.oid = c.conrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = :schema AND t.relname <> 'alembic_version'
                """
            ),
            params,
        )
    }
    columns = {
        (r.table, r.name): (r.type, r.not_null, r.default)
        for r in conn.execute(
            text(
                """
                SELECT t.relname AS table, a.attname AS name,
                       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
                       pg_get_expr(d.adbin, d.adrelid) AS default
                FROM pg_attribute a
                JOIN pg_class t ON t.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE n.nspname = :schema AND t.relkind = 'r' AND a.attnum > 0
                  AND NOT a.attisdropped AND t.relname <> 'alembic_version'
                """
            ),
            params,
        )
    }
    return Catalog(indexes, constraints, columns)


def catalogs(engine: Engine, metadata: MetaData) -> tuple[Catalog, Catalog]:
    """(what the migrations built, what `metadata` declares), read in one transaction that
    creates the declared schema beside the migrated one and is then rolled back."""
    with engine.connect() as conn, conn.begin() as transaction:
        try:
            migrated = read_catalog(conn, "public")
            conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
            metadata.create_all(conn.execution_options(schema_translate_map={None: SCRATCH}))
            declared = read_catalog(conn, SCRATCH)
        finally:
            transaction.rollback()
    return migrated, declared


def differences(migrated: Catalog, declared: Catalog) -> list[str]:
    found: list[str] = []
    for part in ("indexes", "constraints", "columns"):
        built, wanted = getattr(migrated, part), getattr(declared, part)
        for key in sorted(set(built) | set(wanted)):
            if built.get(key) != wanted.get(key):
                found.append(
                    f"{part} {key}:\n  migrations: {built.get(key)}"
                    f"\n  models:     {wanted.get(key)}"
                )
    return found


def test_the_database_is_at_the_head_revision(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()


def test_autogenerate_finds_nothing_to_change(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "the migrations and the models disagree:\n" + pformat(diff)


def test_indexes_constraints_and_columns_render_the_same(engine: Engine) -> None:
    migrated, declared = catalogs(engine, Base.metadata)
    assert migrated.indexes, "no index read back"
    partial = [d for d in migrated.indexes.values() if " WHERE " in d]
    assert len(partial) >= 3, partial  # the queue, the running set, the waiting ones at least
    assert any(kind == "c" for kind, _ in migrated.constraints.values()), "no CHECK read back"
    found = differences(migrated, declared)
    assert not found, "the migrations and the models disagree:\n" + "\n".join(found)


def test_the_catalog_comparison_sees_a_partial_index_predicate(engine: Engine) -> None:
    """The second comparison is not vacuous: the models with the running index's WHERE clause
    changed (a difference autogenerate does not report) and with one column's direction flipped
    are told apart from the migrations."""
    altered = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(altered)
    deployments = altered.tables["deployments"]
    for index in list(deployments.indexes):
        if index.name in ("ix_deployments_running", "ix_deployments_queue"):
            deployments.indexes.discard(index)
    Index(
        "ix_deployments_running",
        deployments.c.cluster_id,
        deployments.c.priority,
        text("started_at DESC"),
        text("id DESC"),
        postgresql_where=text("status = 'pending'"),
    )
    Index(
        "ix_deployments_queue",
        deployments.c.cluster_id,
        text("priority DESC"),
        deployments.c.created_at,
        text("id DESC"),
        postgresql_where=text("status = 'pending' AND unmet_dependencies = 0"),
    )
    migrated, declared = catalogs(engine, altered)
    found = differences(migrated, declared)
    queue, running = found  # sorted by (table, index name)
    assert "ix_deployments_queue" in queue and "created_at, id DESC)" in queue, queue
    assert "ix_deployments_running" in running, running
    assert "WHERE ((status)::text = 'pending'::text)" in running, running
