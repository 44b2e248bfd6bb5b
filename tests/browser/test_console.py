"""The web console in a real browser: `mlops serve` for real (PostgreSQL, its in-process worker),
Debian's Chromium driven by Playwright, every host but 127.0.0.1 cut off.

An admin registers, signs in and builds a cluster through the pages; deployments preempt one
another; the bars, the queue and the timeline show it, and the dry-run preview said so first. A
viewer sees no admin control, and the API refuses the admin action the page does not offer."""

import re
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.support.browser import Visit
from tests.support.console import fill_resources

TIMEOUT_MS = 15_000


def preview_deployment(page: Page, name: str, priority: int, cpu: str) -> Locator:
    form = page.locator("#deploy")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Model").select_option("mock")
    form.get_by_label("Priority").fill(str(priority))
    fill_resources(form, cpu, "2")
    form.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview).to_be_visible()
    return preview


def api(page: Page, path: str) -> Any:
    """A read through the API with the page's own cookie: what really happened."""
    response = page.request.get(page.url.split("/console")[0] + path)
    assert response.ok, response.text()
    return response.json()


def bar(page: Page, resource: str) -> Locator:
    return page.locator(f"#capacity svg[data-resource={resource}]")


def test_an_admin_builds_a_cluster_and_watches_a_preemption(
    context: BrowserContext, console_url: str, visit: Visit
) -> None:
    page = context.new_page()
    page.goto(f"{console_url}/console/register")
    username = f"ada-{page.evaluate('crypto.randomUUID()')[:8]}"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill("correct-horse-42")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Organizations", exact=True)).to_be_visible()

    # Signing out ends the session; signing in again starts one, with the labelled form.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("a wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid username or password")
    page.get_by_label("Password").fill("correct-horse-42")
    page.get_by_role("button", name="Sign in").click()

    create_org = page.locator("#create-org")
    create_org.get_by_label("Name").fill("Acme ML")
    create_org.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name=re.compile("Clusters"))).to_be_visible()

    # The API's errors land beside the field they concern.
    form = page.locator("#create-cluster")
    form.get_by_label("Name").fill("gpu-pool")
    fill_resources(form, "4.0001", "16")
    form.get_by_role("button", name="Create cluster").click()
    expect(form.locator(".field-error")).to_contain_text("decimal places")
    expect(form.get_by_label("CPU (cores)")).to_have_attribute("aria-invalid", "true")
    fill_resources(form, "4", "16")
    form.get_by_role("button", name="Create cluster").click()
    expect(page).to_have_url(re.compile(r"/console/clusters/"))
    expect(bar(page, "cpu")).to_have_attribute("data-allocated", "0")

    # A first deployment: the preview says it starts, and it does; the CPU bar fills to 3 of 4.
    preview = preview_deployment(page, "batch-low", 1, "3")
    expect(preview.locator("#preview-outcome")).to_have_text("It would start at once.")
    preview.get_by_role("button", name="Create deployment").click()
    running = page.locator("#running tbody")
    expect(running.get_by_role("link", name="batch-low")).to_be_visible()
    expect(bar(page, "cpu")).to_have_attribute("data-allocated", "3")
    expect(bar(page, "cpu")).to_have_attribute("aria-label", re.compile("3 of 4 cores allocated"))

    # A higher priority that needs the room: the preview names its victim before anything happens.
    preview = preview_deployment(page, "urgent-high", 10, "3")
    expect(preview.locator("#preview-outcome")).to_have_text(
        "It would start at once, evicting 1 deployment."
    )
    expect(preview.locator("#preview-evicts")).to_have_text("Evicts batch-low (priority 1)")
    previewed_victims = preview.locator("#preview-evicts li").evaluate_all(
        "items => items.map(item => item.dataset.deployment)"
    )
    preview.get_by_role("button", name="Create deployment").click()
    expect(running.get_by_role("link", name="urgent-high")).to_be_visible()
    expect(running.get_by_role("link", name="batch-low")).to_have_count(0)
    queue = page.locator("#queue tbody")
    position = queue.locator("tr", has_text="batch-low").locator("td").first
    expect(position).to_have_text("1")

    # What happened is what the preview said: batch-low, and nobody else, was preempted by it.
    cluster_id = page.url.rsplit("/", 1)[1]
    events = api(page, f"/api/v1/clusters/{cluster_id}/events")
    high = next(e for e in events if e["deployment_name"] == "urgent-high")["deployment_id"]
    preempted = [e for e in events if e["type"] == "preempted"]
    assert [e["deployment_id"] for e in preempted] == previewed_victims
    assert [e["detail"]["preempted_by"] for e in preempted] == [high]

    # The timeline draws it as an arrow from the preemptor to the victim.
    arrow = page.locator(
        f"#timeline g.preemption[data-preemptor='{high}'][data-victim='{previewed_victims[0]}']"
    )
    expect(arrow).to_have_count(1)
    expect(page.locator("#events")).to_contain_text("batch-low was preempted by urgent-high")
    expect(bar(page, "cpu")).to_have_attribute("data-allocated", "3")

    # One that must wait: the preview gives its place in the queue, and that is where it goes.
    preview = preview_deployment(page, "nightly", 0, "2")
    expect(preview.locator("#preview-outcome")).to_contain_text("It would wait at position 2.")
    preview.get_by_role("button", name="Create deployment").click()
    expect(queue.locator("tr", has_text="nightly").locator("td").first).to_have_text("2")
    nightly = api(page, f"/api/v1/clusters/{cluster_id}/deployments?status=pending")
    assert {d["name"]: d["queue_position"] for d in nightly} == {"batch-low": 1, "nightly": 2}

    # A prediction on the mock model, synchronous then asynchronous.
    running.get_by_role("link", name="urgent-high").click()
    expect(page.get_by_role("heading", name=re.compile("urgent-high"))).to_be_visible()
    predict = page.locator("#predict")
    predict.get_by_label("Input").fill("hello")
    predict.get_by_role("button", name="Run prediction").click()
    result = page.locator("#result")
    expect(result).to_contain_text("completed")
    expect(result).to_contain_text('"input":"hello"')
    predict.get_by_label("Input").fill("later, please")
    predict.get_by_label(re.compile("Run asynchronously")).check()
    predict.get_by_role("button", name="Run prediction").click()
    expect(result).to_contain_text("queued")
    expect(result).to_contain_text('"input":"later, please"')
    rows = page.locator("#predictions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("completed")


ADMIN_CONTROLS = [
    ("button", "Delete cluster"),
    ("button", "Save changes"),
    ("button", "Create cluster"),
    ("button", "Rotate invite code"),
    ("button", "Copy invite code"),
    ("button", "Create key"),
    ("link", "API keys"),
    ("link", "Audit log"),
]
DEVELOPER_CONTROLS = [("button", "Preview"), ("button", "Run prediction"), ("button", "Complete")]


def test_a_viewer_sees_no_admin_controls_and_the_api_refuses_the_admin_action(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    viewer, org, cluster = acme["viewer"], acme["org"], acme["cluster"]
    page = context.new_page()
    page.goto(f"{console_url}/console/sign-in")
    page.get_by_label("Username").fill(viewer.username)
    page.get_by_label("Password").fill(viewer.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#clusters").get_by_role("link", name="gpu-pool")).to_be_visible()

    for path in (
        f"/console/orgs/{org['id']}",
        f"/console/clusters/{cluster['id']}",
        f"/console/deployments/{acme['high']['id']}",
        f"/console/orgs/{org['id']}/members",
        f"/console/orgs/{org['id']}/api-keys",
    ):
        page.goto(f"{console_url}{path}")
        expect(page.locator("#whoami")).to_have_text(viewer.username)
        page.wait_for_load_state("networkidle")
        for role, name in ADMIN_CONTROLS + DEVELOPER_CONTROLS:
            expect(page.get_by_role(role, name=name)).to_have_count(0)  # type: ignore[arg-type]
        # Not even hidden: the admin parts are removed from the viewer's document.
        assert page.locator("[data-needs]").count() == 0
        assert page.locator("#members select").count() == 0

    # The cluster page shows what any member may read.
    page.goto(f"{console_url}/console/clusters/{cluster['id']}")
    expect(page.locator("#running tbody")).to_contain_text("urgent-high")
    # The admin action the page does not offer, called directly with the viewer's cookie.
    answer = page.evaluate(
        """async (path) => {
            const response = await fetch(path, {method: "DELETE"});
            return {status: response.status, body: await response.json()};
        }""",
        f"/api/v1/clusters/{cluster['id']}",
    )
    assert answer["status"] == 403
    assert answer["body"]["code"] == "forbidden"
    assert acme["admin"].client.get(f"/api/v1/clusters/{cluster['id']}").status_code == 200


def test_an_admin_sees_the_controls_a_viewer_does_not(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    """The other half of the viewer's test: the same pages offer these controls to an admin, so
    their absence above is the role's doing, not a page that failed to load."""
    context.add_cookies([acme["admin"].cookie(console_url)])
    page = context.new_page()
    seen: set[tuple[str, str]] = set()
    for path in (
        f"/console/orgs/{acme['org']['id']}",
        f"/console/clusters/{acme['cluster']['id']}",
        f"/console/deployments/{acme['high']['id']}",
        f"/console/orgs/{acme['org']['id']}/members",
        f"/console/orgs/{acme['org']['id']}/api-keys",
    ):
        page.goto(f"{console_url}{path}")
        page.wait_for_load_state("networkidle")
        for role, name in ADMIN_CONTROLS + DEVELOPER_CONTROLS:
            if page.get_by_role(role, name=name).count():  # type: ignore[arg-type]
                seen.add((role, name))
    assert seen == set(ADMIN_CONTROLS + DEVELOPER_CONTROLS)
