"""A setup that cannot work ends `mlops` with one sentence and a non-zero status, never a
traceback: an unmigrated database, a missing or unreachable PostgreSQL, a URL no engine can open,
settings that do not validate. Anything else still raises. And JSON logs carry no colour codes."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.cli import startup_problem
from app.core.logging import configure_logging
from app.db.migrations import alembic_config, head_revision, require_head
from app.db.session import create_engine
from tests.support.databases import ADMIN_URL
from tests.support.processes import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SERVER = ADMIN_URL.rsplit("/", 1)[0]  # postgresql://postgres@127.0.0.1:5432


def mlops(cwd: Path, *args: str, **environment: str) -> str:
    """Run `mlops ARGS` with only these settings (and no .env: `cwd` has none); assert it failed
    without a traceback and return what it wrote on stderr."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    """A PostgreSQL database that exists and was never migrated."""
    name = f"mlops_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{SERVER}/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- a worker on a schema that is not at head refuses to start ---------------------------------


def test_a_worker_on_a_fresh_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert one_line(mlops(tmp_path, "worker", DATABASE_URL=url)) == (
        "mlops worker: the database schema is not at head (it was never migrated, "
        f"head is {head_revision()}); run `mlops migrate`"
    )


def test_demo_seed_without_a_default_deployment_or_on_a_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    unset = one_line(mlops(tmp_path, "demo-seed", DATABASE_URL=url))
    assert (
        unset
        == "mlops demo-seed: set DEFAULT_DEPLOYMENT_ID to the id the demo deployment should have"
    )
    fresh = one_line(
        mlops(tmp_path, "demo-seed", DATABASE_URL=url, DEFAULT_DEPLOYMENT_ID=str(uuid.uuid4()))
    )
    assert "mlops migrate" in fresh, fresh


def test_a_worker_on_an_empty_postgresql_database_refuses_to_start(
    tmp_path: Path, empty_postgres_database: str
) -> None:
    stderr = mlops(tmp_path, "worker", DATABASE_URL=empty_postgres_database)
    assert "the database schema is not at head (it was never migrated" in one_line(stderr)


def test_a_worker_on_an_older_schema_names_both_revisions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    first = ScriptDirectory.from_config(alembic_config()).get_base()
    assert isinstance(first, str) and first != head_revision()
    command.upgrade(alembic_config(url), first)
    assert one_line(mlops(tmp_path, "worker", DATABASE_URL=url)) == (
        f"mlops worker: the database schema is not at head (it is at {first}, "
        f"head is {head_revision()}); run `mlops migrate`"
    )


def test_a_migrated_database_is_at_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    command.upgrade(alembic_config(url), "head")

    async def check() -> None:
        engine = create_engine(url)
        try:
            await require_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(check())


# --- a PostgreSQL database that does not exist, a server that cannot be reached ----------------


@pytest.mark.parametrize(
    "args", [("migrate",), ("worker",), ("serve",), ("serve", "--no-migrate")], ids=" ".join
)
def test_a_missing_postgresql_database_says_how_to_create_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    name = f"mlops_missing_{uuid.uuid4().hex[:8]}"
    port = [] if args[0] != "serve" else ["--port", str(free_port())]
    stderr = mlops(tmp_path, *args, *port, DATABASE_URL=f"{SERVER}/{name}")
    line = one_line(stderr)
    assert line.startswith(f'mlops {args[0]}: the database "{name}" does not exist on the '), line
    server = make_url(SERVER)
    port = f" -p {server.port}" if server.port else ""
    where = f"-h {server.host}{port} -U {server.username}"
    assert line.endswith(f"; create it with: createdb {where} {name}"), line


def test_a_postgresql_server_that_refuses_connections(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/mlops"
    assert one_line(mlops(tmp_path, "migrate", DATABASE_URL=url)) == (
        f"mlops migrate: cannot reach the PostgreSQL server at 127.0.0.1:{port} (connection "
        "refused); is it running, and are the host and port in DATABASE_URL right?"
    )


def test_an_unknown_postgresql_host(tmp_path: Path) -> None:
    url = "postgresql://postgres@db.example.invalid:5432/mlops"
    line = one_line(mlops(tmp_path, "worker", DATABASE_URL=url))
    assert line.startswith(
        "mlops worker: cannot reach the PostgreSQL server at db.example.invalid:5432 (unknown host)"
    ), line


# --- settings: a URL no engine can open, a weak production secret, values that do not validate --


@pytest.mark.parametrize(
    "url", ["mysql://root@127.0.0.1/mlops", "foo://x", "postgresql+asyncpg://u@h/db"]
)
def test_a_database_url_with_a_wrong_scheme(tmp_path: Path, url: str) -> None:
    scheme = url.split("://", 1)[0]
    assert one_line(mlops(tmp_path, "serve", DATABASE_URL=url)) == (
        f"mlops serve: DATABASE_URL has the scheme {scheme}://, which this service cannot use; "
        "use postgresql://user:password@host:5432/name or sqlite:///path/to/file.db"
    )


def test_a_database_url_that_is_no_url(tmp_path: Path) -> None:
    line = one_line(mlops(tmp_path, "migrate", DATABASE_URL="not a url"))
    assert line.startswith("mlops migrate: DATABASE_URL is not a database URL; use "), line


@pytest.mark.parametrize("secret", [None, "short"])
def test_production_without_a_real_secret_key(tmp_path: Path, secret: str | None) -> None:
    environment = {"ENVIRONMENT": "production"} | ({"SECRET_KEY": secret} if secret else {})
    line = one_line(mlops(tmp_path, "serve", **environment))
    assert line.startswith(
        "mlops serve: SECRET_KEY must be set to a random value of at least 32 bytes with at "
        "least 8 distinct characters when ENVIRONMENT=production"
    ), line


def test_invalid_settings_read_one_line_each(tmp_path: Path) -> None:
    stderr = mlops(tmp_path, "migrate", ENVIRONMENT="staging", DB_POOL_SIZE="0")
    assert stderr.splitlines() == [
        "mlops migrate: ENVIRONMENT: Input should be 'development', 'production' or 'test'",
        "mlops migrate: DB_POOL_SIZE: Input should be greater than or equal to 1",
    ]


def test_an_unknown_log_level(tmp_path: Path) -> None:
    assert one_line(mlops(tmp_path, "migrate", LOG_LEVEL="verbose")) == (
        "mlops migrate: LOG_LEVEL: unknown level 'verbose'; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


# --- anything unknown keeps its traceback ---------------------------------------------------------


def test_unknown_exceptions_are_not_turned_into_sentences() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/mlops"
    assert startup_problem(RuntimeError("a bug"), url) is None
    assert startup_problem(ValueError("a bug"), url) is None
    unexplained = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert startup_problem(unexplained, url) is None


# --- JSON logs carry no ANSI escape codes -------------------------------------------------------


def test_json_logs_leave_out_uvicorns_colored_message(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        # What uvicorn logs at start: the message, and a copy with colour codes as an extra.
        logging.getLogger("uvicorn.error").info(
            "Started server process [%d]",
            42,
            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "\x1b" not in line and "\\u001b" not in line, line
    record = json.loads(line)
    assert record["message"] == "Started server process [42]"
    assert "color_message" not in record
