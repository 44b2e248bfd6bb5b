from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.support.api import AppFactory, ClientFactory, User, World
from tests.support.fakes import build_tiny_distilbert


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_distilbert(tmp_path_factory.mktemp("distilbert"))


@pytest.fixture
async def live(
    app: FastAPI, app_factory: AppFactory, client_factory: ClientFactory
) -> Callable[..., Any]:
    """`async with live(**settings) as (app, world)`: an app whose in-process worker runs."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[FastAPI, World]]:
        built = app_factory(worker_in_process=True, **overrides)
        async with LifespanManager(built):
            yield built, World(lambda: client_factory(built))

    return start


async def deploy(world: World, model: str) -> tuple[User, dict[str, Any]]:
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    deployment = await world.deployment(admin, cluster, cpu=1, model=model)
    return admin, deployment
