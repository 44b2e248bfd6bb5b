"""Fixtures: real PostgreSQL (a fresh database per session, emptied between tests), SQLite for
the tests marked `both_backends`, and apps built per test with their own settings."""

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from tests.support.api import Live, World, check_error_shape_hook
from tests.support.databases import (
    create_postgres_database,
    create_sqlite_database,
    drop_postgres_database,
    empty_all_tables,
)

TEST_SECRET = "test-secret-key-not-for-production"
# argon2id at its cheapest for the suite, which hashes thousands of passwords: at OWASP's cost they
# took most of its time. tests/test_config.py holds the default and production to the baseline.
TEST_PASSWORD_COST = {"PASSWORD_HASH_MEMORY_KIB": "64", "PASSWORD_HASH_TIME_COST": "1"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: run on PostgreSQL and on SQLite")
    config.addinivalue_line(
        "markers",
        "stack: the production topology on this machine (nginx, several API processes, "
        "workers); `pytest -m stack` runs it alone",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_backends") is not None
        metafunc.parametrize("backend", ["postgresql", "sqlite"] if both else ["postgresql"])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name, url = create_postgres_database()
    yield url
    drop_postgres_database(name)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return create_sqlite_database(Path(tmp_path_factory.mktemp("sqlite")))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    fixture = "postgres_url" if backend == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def settings_factory(database_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "secret_key": TEST_SECRET,
            "environment": "test",
            "rate_limit_enabled": False,
            "worker_in_process": False,
            **{key.lower(): int(value) for key, value in TEST_PASSWORD_COST.items()},
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
async def app_factory(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[..., FastAPI]]:
    apps: list[FastAPI] = []

    def build(**overrides: Any) -> FastAPI:
        app = create_app(settings_factory(**overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.state.engine.dispose()


@pytest.fixture
async def app(app_factory: Callable[..., FastAPI]) -> FastAPI:
    built = app_factory()
    await empty_all_tables(built.state.engine)
    return built


@pytest.fixture
async def client_factory(app: FastAPI) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def build(target: FastAPI | None = None, **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=target or app, raise_app_exceptions=False)
        client = httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            event_hooks={"response": [check_error_shape_hook]},
            **kwargs,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(client_factory: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return client_factory()


@pytest.fixture
def world(client_factory: Callable[..., httpx.AsyncClient]) -> World:
    return World(client_factory)


@pytest.fixture
def live(
    app: FastAPI,
    app_factory: Callable[..., FastAPI],
    client_factory: Callable[..., httpx.AsyncClient],
) -> Live:
    """`async with live(**settings) as (app, world)`: an app whose in-process worker runs (`app`
    empties the tables first)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[FastAPI, World]]:
        built = app_factory(worker_in_process=True, **overrides)
        async with LifespanManager(built):
            yield built, World(lambda: client_factory(built))

    return start
