from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.api import World


@pytest.fixture
async def world_with_data(
    app: FastAPI, world: World, postgres_url: str
) -> tuple[str, str, dict[str, Any]]:
    """(database URL, a signed-in admin's cookie, a running mock deployment) on PostgreSQL."""
    admin = await world.user()
    org = await world.org(admin)
    cluster = await world.cluster(org, cpu=4)
    deployment = await world.deployment(admin, cluster, cpu=1)
    return postgres_url, admin.client.cookies["session"], deployment
