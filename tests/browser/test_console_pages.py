"""Every console page, at a desktop's width and a phone's: it loads with nothing but 127.0.0.1,
every control has a name, text keeps its contrast, nothing spills sideways; and the screenshots
of the README (docs/console/) are taken from these very pages.

`CONSOLE_SCREENSHOTS=<dir>` writes the screenshots elsewhere than docs/console/."""

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import DESKTOP, PHONE, Visit, offline_context
from tests.support.console import route_of

SCREENSHOTS = Path(
    os.environ.get("CONSOLE_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "docs" / "console"
)
TIMEOUT_MS = 15_000

# Controls without a name, text below 4.5:1 against what is behind it, a page wider than the
# window: each as a list of what offends, computed in the page.
UNNAMED_CONTROLS = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => el.getClientRects().length)
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute("aria-label")
                    || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map((el) => el.outerHTML.slice(0, 120))"""
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || !el.getClientRects().length) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3)
      .map((n) => n.textContent.trim()).join("");
    if (!text) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || Number(style.opacity) < 1) continue;
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(`${text.slice(0, 40)}: ${ratio.toFixed(2)}`);
  }
  return bad;
}"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def pages(acme: dict[str, Any]) -> dict[str, str]:
    org, cluster = acme["org"]["id"], acme["cluster"]["id"]
    return {
        "sign-in": "/console/sign-in",
        "register": "/console/register",
        "organizations": "/console?all",
        "clusters": f"/console/orgs/{org}",
        "cluster": f"/console/clusters/{cluster}",
        "deployments": f"/console/orgs/{org}/deployments",
        "deployment": f"/console/deployments/{acme['high']['id']}",
        "members": f"/console/orgs/{org}/members",
        "api-keys": f"/console/orgs/{org}/api-keys",
        "audit": f"/console/orgs/{org}/audit",
    }


@pytest.fixture
def predicted(acme: dict[str, Any]) -> dict[str, Any]:
    """The world of the screenshots: a prediction done, an API key made."""
    admin = acme["admin"]
    admin.post(f"/api/v1/deployments/{acme['high']['id']}/predict", {"input": "hello"})
    admin.post(
        f"/api/v1/organizations/{acme['org']['id']}/api-keys",
        {"name": "nightly-batch", "role": "developer"},
    )
    return acme


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_loads_offline_labelled_readable_and_fits(
    browser: Browser,
    console_url: str,
    predicted: dict[str, Any],
    viewport: dict[str, int],
) -> None:
    size = "desktop" if viewport == DESKTOP else "phone"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in pages(predicted).items():
        visit = Visit()
        context = offline_context(browser, visit, viewport)
        context.set_default_timeout(TIMEOUT_MS)
        if name not in ("sign-in", "register"):
            context.add_cookies([predicted["admin"].cookie(console_url)])
        page = context.new_page()
        page.goto(f"{console_url}{path}")
        page.wait_for_load_state("networkidle")
        expect(page.locator("h1")).to_be_visible()
        assert page.locator("#page-status.error").count() == 0, page.locator(
            "#page-status"
        ).text_content()
        settle(page, name)
        assert page.evaluate(UNNAMED_CONTROLS) == [], name
        assert page.evaluate(LOW_CONTRAST) == [], name
        assert page.evaluate(OVERFLOW) <= 0, f"{name} is wider than {viewport['width']} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}.png"), full_page=True)
        context.close()
        visit.assert_offline()
        assert visit.failed == [], (name, visit.failed)
        api_calls = [call for call in visit.requests if call[1].startswith("/api/")]
        assert all(route_of(*call) for call in api_calls), api_calls


def settle(page: Page, name: str) -> None:
    """Waits until the page shows its data, so that the screenshot does."""
    filled = {
        "clusters": "#clusters svg.bar",
        "cluster": "#timeline g.preemption",
        "deployment": "#predictions tbody tr[data-prediction]",
        "members": "#members tbody tr[data-user]",
        "api-keys": "#keys tbody tr[data-key]",
        "audit": "#audit tbody tr[data-action]",
        "deployments": "#deployments tbody tr[data-deployment]",
    }
    if name in filled:
        expect(page.locator(filled[name]).first).to_be_attached(timeout=TIMEOUT_MS)


def test_keyboard_alone_signs_in(browser: Browser, console_url: str, acme: dict[str, Any]) -> None:
    visit = Visit()
    context = offline_context(browser, visit, DESKTOP)
    page = context.new_page()
    page.goto(f"{console_url}/console/sign-in")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(acme["viewer"].username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(acme["viewer"].password)
    page.keyboard.press("Enter")
    expect(page.locator("#whoami")).to_have_text(acme["viewer"].username, timeout=TIMEOUT_MS)
    # The first Tab of a page reaches the skip link, which moves the focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    context.close()
    visit.assert_offline()
