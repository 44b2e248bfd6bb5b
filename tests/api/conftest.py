import pytest

from tests.support.api import Org, User, World


@pytest.fixture
async def running(world: World) -> tuple[Org, User, str]:
    """An admin's organization with a cluster and one running deployment (its id)."""
    admin = await world.user()
    org = await world.org(admin)
    cluster_id = await world.cluster(org)
    deployment = await world.deployment(admin, cluster_id)
    assert deployment["status"] == "running"
    return org, admin, deployment["id"]
