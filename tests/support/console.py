"""The console's own list of the API calls it makes (`ROUTES` in app/console/static/js/api.js),
read from the script itself, and the matching of a request's path against it; and filling the
console's resource fieldsets."""

import re
from functools import cache
from pathlib import Path

from playwright.sync_api import Locator

API_JS = Path(__file__).resolve().parents[2] / "app" / "console" / "static" / "js" / "api.js"
_ENTRY = re.compile(r'^\s+(\w+): \["(GET|POST|PATCH|PUT|DELETE)", "(/api/v1/[^"]*)"\],$', re.M)


@cache
def console_routes() -> dict[str, tuple[str, str]]:
    """{name: (method, route template)}, as the console declares them."""
    text = API_JS.read_text()
    block = text[text.index("export const ROUTES = {") : text.index("};", text.index("ROUTES"))]
    routes = {name: (method, path) for name, method, path in _ENTRY.findall(block)}
    assert len(routes) == block.count('["'), "an entry of ROUTES is not in the expected form"
    return routes


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")


def route_of(method: str, path: str) -> tuple[str, str] | None:
    """The console route a request was made for, or None when it is none of them."""
    for route in console_routes().values():
        if route[0] == method and _pattern(route[1]).match(path):
            return route
    return None


def fill_resources(form: Locator, cpu: str, ram: str, gpu: str = "0") -> None:
    """The CPU, RAM and GPU fields of a console form (a cluster's capacity, a deployment's ask)."""
    form.get_by_label("CPU (cores)").fill(cpu)
    form.get_by_label("RAM (GiB)").fill(ram)
    form.get_by_label("GPUs").fill(gpu)
