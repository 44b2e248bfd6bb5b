"""The interactive documentation renders with no network but the service itself: `mlops serve` for
real, Debian's Chromium driven by Playwright, every request to a host other than 127.0.0.1 refused
and recorded. Both pages must render the operations (a summary's text), load every asset they ask
for, and need nothing from outside.

`DOCS_SCREENSHOT=docs/images/swagger-ui.png pytest tests/browser` also writes the README's
screenshot of /docs there (otherwise it goes to the test's temporary directory)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import Visit, offline_context
from tests.support.processes import free_port, service_env, start_api, stop

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


def open_offline(browser: Browser, url: str) -> tuple[Page, Visit]:
    visit = Visit()
    page = offline_context(browser, visit).new_page()
    page.goto(url, wait_until="load")
    return page, visit


def assert_offline(visit: Visit) -> None:
    visit.assert_offline()
    assert visit.failed == [], visit.failed


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
