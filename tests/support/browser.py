"""Debian's Chromium under Playwright, cut off from every host but 127.0.0.1, and what a page did.

Playwright never downloads a browser here: it drives /usr/bin/chromium (`make test` installs it).
Every request to another host is refused and recorded, so a page that needs anything from outside
(a CDN, a web font) fails its test."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Request, Route, sync_playwright

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
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: `make test` installs Debian's package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Visit:
    """What pages asked for: refused requests (any host but 127.0.0.1), failed loads, errors, and
    the method and path of every request that was answered."""

    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def assert_offline(self) -> None:
        assert self.refused == [], f"the page needed other hosts: {self.refused}"
        assert self.errors == [], self.errors
        assert all(urlsplit(url).hostname == "127.0.0.1" for url in self.loaded), self.loaded


def offline_context(
    browser: Browser, visit: Visit, viewport: dict[str, int] = DESKTOP
) -> BrowserContext:
    """A fresh context (its own cookies) whose pages reach 127.0.0.1 only, recorded in `visit`."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]

    def gate(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            visit.refused.append(route.request.url)
            route.abort()

    def finished(request: Request) -> None:
        visit.requests.append((request.method, urlsplit(request.url).path))
        response = request.response()
        if response is not None and response.status >= 400:
            visit.failed.append(f"{response.status} {request.method} {request.url}")
        else:
            visit.loaded.append(request.url)

    context.route("**/*", gate)
    context.on("requestfinished", finished)
    context.on("requestfailed", lambda request: visit.failed.append(f"failed {request.url}"))
    context.on("weberror", lambda error: visit.errors.append(str(error.error)))
    return context
