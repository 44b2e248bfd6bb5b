"""The interactive documentation renders with no network but the service itself: `mlops serve` for
real, Debian's Chromium driven by Playwright, every request to a host other than 127.0.0.1 refused
and recorded. Both pages must render the operations (a summary's text), load every asset they ask
for, and need nothing from outside.

`DOCS_SCREENSHOT=docs/images/swagger-ui.png pytest tests/browser` also writes the README's
screenshot of /docs there (otherwise it goes to the test's temporary directory)."""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

from tests.support.processes import free_port, service_env, start_api, stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Below the interception: no name but the loopback resolves, so nothing could leave anyway.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SUMMARY = "Run a prediction"  # the summary of POST /api/v1/deployments/{deployment_id}/predict
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def base_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("docs-api") / "api.log"
    server = start_api(service_env(postgres_url, WORKER_IN_PROCESS="false"), port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: `make test` installs Debian's package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Visit:
    """What a page asked for: refused requests (any host but 127.0.0.1), failed loads, errors."""

    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)


def open_offline(browser: Browser, url: str) -> tuple[Page, Visit]:
    visit = Visit()
    context = browser.new_context(viewport={"width": 1280, "height": 960})

    def gate(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            visit.refused.append(route.request.url)
            route.abort()

    def finished(request: Request) -> None:
        response = request.response()
        if response is not None and response.status >= 400:
            visit.failed.append(f"{response.status} {request.url}")
        else:
            visit.loaded.append(request.url)

    context.route("**/*", gate)
    page = context.new_page()
    page.on("requestfinished", finished)
    page.on("requestfailed", lambda request: visit.failed.append(f"failed {request.url}"))
    page.on("pageerror", lambda error: visit.errors.append(str(error)))
    page.goto(url, wait_until="load")
    return page, visit


def assert_offline(visit: Visit) -> None:
    assert visit.refused == [], f"the page needed other hosts: {visit.refused}"
    assert visit.failed == [], visit.failed
    assert visit.errors == [], visit.errors
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in visit.loaded), visit.loaded


def test_swagger_ui_renders_the_operations_offline(
    browser: Browser, base_url: str, tmp_path: Path
) -> None:
    page, visit = open_offline(browser, f"{base_url}/docs")
    summary = page.get_by_text(SUMMARY).first
    summary.wait_for(timeout=TIMEOUT_MS)
    assert summary.is_visible()
    # The session cookie scheme gives the page its "Authorize" button.
    assert page.locator("button.authorize").first.is_visible()
    page.wait_for_load_state("networkidle")
    screenshot = Path(os.environ.get("DOCS_SCREENSHOT") or tmp_path / "swagger-ui.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert_offline(visit)
    assert any("/static/swagger-ui/swagger-ui-bundle.js" in url for url in visit.loaded)
    page.context.close()


def test_redoc_renders_the_operations_offline(browser: Browser, base_url: str) -> None:
    page, visit = open_offline(browser, f"{base_url}/redoc")
    summary = page.get_by_text(SUMMARY).first
    summary.wait_for(state="attached", timeout=TIMEOUT_MS)
    assert page.get_by_role("heading", name=SUMMARY).first.is_visible() or summary.is_visible()
    page.wait_for_load_state("networkidle")
    assert_offline(visit)
    assert any("/static/redoc/redoc.standalone.js" in url for url in visit.loaded)
    page.context.close()
