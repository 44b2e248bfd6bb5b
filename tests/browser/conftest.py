"""What the browser tests share: one Chromium, one live console server, and a world to look at."""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.support.browser import chromium
from tests.support.live import deploy, join, person
from tests.support.processes import free_port, service_env, start_api, stop


@pytest.fixture(scope="module")
def browser(postgres_url: str) -> Iterator[Browser]:
    """Per module: Playwright's sync API holds an event loop in this thread while it runs, so the
    test database (set up with asyncio.run) comes first, and async tests never run beside it."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def console_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlops serve` with its in-process worker; the mock model answers in well under a second."""
    port = free_port()
    log = tmp_path_factory.mktemp("console-api") / "api.log"
    env = service_env(postgres_url, MOCK_DELAY_MIN="0.2", MOCK_DELAY_MAX="0.4")
    server = start_api(env, port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


@pytest.fixture
def acme(console_url: str) -> dict[str, Any]:
    """An organization with a cluster where one deployment preempted another, and a viewer."""
    admin = person(console_url, "admin")
    viewer = person(console_url, "viewer")
    org = admin.post("/api/v1/organizations", {"name": "Acme ML"})
    join(viewer, admin, org, "viewer")
    cluster = admin.post(
        f"/api/v1/organizations/{org['id']}/clusters",
        {"name": "gpu-pool", "capacity": {"cpu": 4, "ram_gb": 16, "gpu": 0}},
    )
    deploy(admin, cluster["id"], "batch-low", 3, priority=1)
    high = deploy(admin, cluster["id"], "urgent-high", 3, priority=10)
    deploy(admin, cluster["id"], "nightly", 2, priority=0)
    return {"admin": admin, "viewer": viewer, "org": org, "cluster": cluster, "high": high}
