"""What the browser tests share: one Chromium, one live console server, and a world to look at."""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.support.browser import DESKTOP, Visit, chromium, offline_context
from tests.support.console import route_of
from tests.support.live import deploy, join, person
from tests.support.processes import free_port, service_env, start_api, stop


@pytest.fixture(scope="module")
def browser(postgres_url: str) -> Iterator[Browser]:
    """Per module: Playwright's sync API holds an event loop in this thread while it runs, so the
    test database (set up with asyncio.run) comes first, and async tests never run beside it."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def console_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlops serve` with its in-process worker; the mock model answers in well under a second.
    Per module: its worker and sweepers act on the test database, so it must be gone before the
    tests of other directories run."""
    port = free_port()
    log = tmp_path_factory.mktemp("console-api") / "api.log"
    env = service_env(postgres_url, MOCK_DELAY_MIN="0.2", MOCK_DELAY_MAX="0.4")
    server = start_api(env, port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)  # a loaded CI machine; a passing check returns at once


@pytest.fixture
def visit() -> Visit:
    return Visit()


@pytest.fixture
def context(browser: Browser, visit: Visit) -> Iterator[BrowserContext]:
    context = offline_context(browser, visit, DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()
    visit.assert_offline()
    assert_only_console_routes(visit)


def assert_only_console_routes(visit: Visit) -> None:
    """Every call the pages made to the service is one the console declares (and the access
    tests cover, see test_console_rules.py): the browser sent nothing else."""
    calls = {(method, path) for method, path in visit.requests if path.startswith("/api/")}
    assert calls, "the pages called no API at all"
    assert [call for call in calls if route_of(*call) is None] == []


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


@pytest.fixture
def browser_context_pair(
    browser: Browser, visit: Visit
) -> Iterator[tuple[BrowserContext, BrowserContext]]:
    """Two people at two browsers (each context its own cookies), recorded alike."""
    contexts = (offline_context(browser, visit, DESKTOP), offline_context(browser, visit, DESKTOP))
    try:
        yield contexts
    finally:
        for context in contexts:
            context.close()
    visit.assert_offline()
    assert_only_console_routes(visit)
