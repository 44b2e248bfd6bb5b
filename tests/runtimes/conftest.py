from pathlib import Path
from typing import Any

import pytest

from tests.support.api import User, World
from tests.support.fakes import build_tiny_distilbert


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_distilbert(tmp_path_factory.mktemp("distilbert"))


async def deploy(world: World, model: str) -> tuple[User, dict[str, Any]]:
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    deployment = await world.deployment(admin, cluster, cpu=1, model=model)
    return admin, deployment
