"""What the console lets people do, each through its page, checked through the API afterwards:
joining with a code, changing roles, removing members, rotating the invite code; resizing,
re-strategizing and deleting a cluster (with the API's refusals shown); completing and cancelling
deployments; API keys and the audit log; and the cluster page following changes live, paused
while the tab is hidden."""

import re
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.support.console import fill_resources
from tests.support.live import Person, deploy, person

# What the browser does when the tab goes to the background or comes back.
SET_VISIBILITY = """(state) => {
    const getter = (value) => ({configurable: true, get: () => value});
    Object.defineProperty(document, "hidden", getter(state === "hidden"));
    Object.defineProperty(document, "visibilityState", getter(state));
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def open_as(context: BrowserContext, who: Person, url: str) -> Page:
    base = url.split("/console")[0]
    context.add_cookies([who.cookie(base)])
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of destructive actions
    page.goto(url)
    expect(page.locator("body[data-ready]")).to_be_attached()
    return page


def test_joining_roles_removal_and_the_invite_code(
    browser_context_pair: tuple[BrowserContext, BrowserContext],
    console_url: str,
    acme: dict[str, Any],
) -> None:
    admin_context, newcomer_context = browser_context_pair
    admin, org = acme["admin"], acme["org"]
    newcomer = person(console_url, "grace")

    # A newcomer joins with the code, from the organizations page; a wrong code is refused.
    page = open_as(newcomer_context, newcomer, f"{console_url}/console?all")
    join = page.locator("#join-org")
    join.get_by_label("Invite code").fill("not-a-code")
    join.get_by_role("button", name="Join").click()
    expect(join.get_by_role("alert")).to_contain_text("No organization has that invite code")
    join.get_by_label("Invite code").fill(org["invite_code"])
    join.get_by_role("button", name="Join").click()
    expect(page).to_have_url(f"{console_url}/console/orgs/{org['id']}")

    # The admin makes the newcomer a viewer, then removes them.
    members = open_as(admin_context, admin, f"{console_url}/console/orgs/{org['id']}/members")
    role = members.get_by_label(f"Role of {newcomer.username}")
    role.select_option("viewer")
    expect(members.locator("#page-status")).to_contain_text(f"{newcomer.username} is now viewer")
    assert newcomer.client.get("/api/v1/auth/me").json()["organizations"][0]["role"] == "viewer"
    members.get_by_role("button", name=f"Remove {newcomer.username}").click()
    expect(members.locator(f"tr:has-text('{newcomer.username}')")).to_have_count(0)
    assert newcomer.client.get(f"/api/v1/organizations/{org['id']}").status_code == 404

    # Rotating the code: the page shows the new one, and the old one joins nobody.
    code = members.get_by_label("Current invite code")
    expect(code).to_have_value(org["invite_code"])
    members.get_by_role("button", name="Rotate invite code").click()
    expect(members.locator("#invite-alert")).to_contain_text("Rotated")
    expect(code).not_to_have_value(org["invite_code"])
    rejoin = newcomer.client.post(
        "/api/v1/organizations/join", json={"invite_code": org["invite_code"]}
    )
    assert rejoin.status_code == 404
    new_code = code.input_value()
    assert admin.client.get(f"/api/v1/organizations/{org['id']}").json()["invite_code"] == new_code


def test_cluster_settings_show_the_apis_refusals_then_apply(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    cluster = acme["cluster"]
    page = open_as(context, acme["admin"], f"{console_url}/console/clusters/{cluster['id']}")
    settings = page.locator("#settings")
    expect(settings.get_by_label("CPU (cores)")).to_have_value("4")

    # Below what is allocated: 409, shown on the form, nothing changed.
    settings.get_by_label("CPU (cores)").fill("2")
    settings.get_by_role("button", name="Save changes").click()
    refusal = settings.get_by_role("alert")
    expect(refusal).to_contain_text("below what running deployments already use")

    # Twice the room and the `none` strategy: saved, and the bars follow.
    settings.get_by_label("CPU (cores)").fill("8")
    settings.get_by_label("Preemption strategy").select_option("none")
    settings.get_by_role("button", name="Save changes").click()
    expect(page.locator("#cluster-strategy")).to_contain_text("strategy none")
    expect(page.locator("#capacity svg[data-resource=cpu]")).to_have_attribute("data-capacity", "8")
    saved = acme["admin"].client.get(f"/api/v1/clusters/{cluster['id']}").json()
    assert saved["capacity"]["cpu"] == 8.0
    assert saved["preemption_strategy"] == "none"

    # In use: the delete is refused with the API's reason.
    page.get_by_role("button", name="Delete cluster").click()
    refusal = page.locator("#delete-alert")
    expect(refusal).to_contain_text("still has pending or running deployments")
    assert acme["admin"].client.get(f"/api/v1/clusters/{cluster['id']}").status_code == 200


def test_complete_and_cancel_from_the_deployment_page(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    admin, cluster, high = acme["admin"], acme["cluster"], acme["high"]
    page = open_as(context, admin, f"{console_url}/console/deployments/{high['id']}")
    page.get_by_role("button", name="Complete").click()
    expect(page.locator("#deployment-status")).to_have_text("completed")
    expect(page.locator("#events")).to_contain_text("urgent-high completed")
    # Its room went to the head of the queue, in the same request.
    pending = admin.client.get(f"/api/v1/clusters/{cluster['id']}/deployments?status=running")
    assert [d["name"] for d in pending.json()] == ["batch-low"]

    nightly = next(
        d
        for d in admin.client.get(f"/api/v1/clusters/{cluster['id']}/deployments").json()
        if d["name"] == "nightly"
    )
    page.goto(f"{console_url}/console/deployments/{nightly['id']}")
    page.get_by_role("button", name="Cancel deployment").click()
    expect(page.locator("#deployment-status")).to_have_text("cancelled")
    assert admin.client.get(f"/api/v1/deployments/{nightly['id']}").json()["status"] == "cancelled"


def test_api_keys_are_shown_once_revoked_and_audited(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    admin, org = acme["admin"], acme["org"]
    page = open_as(context, admin, f"{console_url}/console/orgs/{org['id']}/api-keys")
    form = page.locator("#create-key")
    form.get_by_label("Name").fill("nightly-batch")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Secret key")
    expect(secret).to_have_value(re.compile(r"^mlops_"))
    key = secret.input_value()
    me = admin.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["organizations"][0]["role"] == "viewer"
    row = page.locator("#keys tbody tr", has_text="nightly-batch")
    expect(row).to_contain_text(key[:14])
    page.get_by_role("button", name="Revoke nightly-batch").click()
    expect(row.get_by_role("button")).to_have_count(0)
    revoked = admin.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401

    page.goto(f"{console_url}/console/orgs/{org['id']}/audit")
    entries = page.locator("#audit tbody tr")
    expect(entries.first).to_have_attribute("data-action", "api_key.revoked")
    page.get_by_label("Action").select_option("api_key.created")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("nightly-batch")


def test_the_cluster_page_follows_changes_and_pauses_while_hidden(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    admin, cluster = acme["admin"], acme["cluster"]
    page = open_as(context, admin, f"{console_url}/console/clusters/{cluster['id']}")
    running = page.locator("#running tbody")
    expect(running).to_contain_text("urgent-high")

    # A change made elsewhere (another person, a program) shows without a reload.
    high = acme["high"]
    admin.post(f"/api/v1/deployments/{high['id']}/complete")
    expect(running).to_contain_text("batch-low", timeout=10_000)
    expect(running).not_to_contain_text("urgent-high")

    # Hidden, the page asks nothing; shown again, it catches up at once.
    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if "/api/" in request.url else None
    )
    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_timeout(500)  # a refresh already in flight may finish
    polls.clear()
    deploy(admin, cluster["id"], "while-hidden", 0.5, priority=0)
    page.wait_for_timeout(7_000)  # more than two polling periods
    assert polls == []
    expect(running).not_to_contain_text("while-hidden")
    page.evaluate(SET_VISIBILITY, "visible")
    expect(running).to_contain_text("while-hidden", timeout=2_000)


def test_polling_keeps_what_was_unfolded_and_where_the_focus_is(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    page = open_as(
        context, acme["admin"], f"{console_url}/console/clusters/{acme['cluster']['id']}"
    )
    reason = page.locator("#queue tr", has_text="nightly").locator("summary")
    reason.focus()
    page.keyboard.press("Enter")
    details = page.locator("#queue tr", has_text="nightly").locator("details")
    expect(details).to_have_attribute("open", "")
    page.wait_for_timeout(7_000)  # two polls
    expect(details).to_have_attribute("open", "")
    expect(reason).to_be_focused()


def test_a_double_click_on_create_makes_one_deployment(
    context: BrowserContext, console_url: str, acme: dict[str, Any]
) -> None:
    cluster = acme["cluster"]
    page = open_as(context, acme["admin"], f"{console_url}/console/clusters/{cluster['id']}")
    form = page.locator("#deploy")
    form.get_by_label("Name").fill("impatient")
    fill_resources(form, "0.5", "1")
    form.get_by_role("button", name="Preview").click()
    page.get_by_role("button", name="Create deployment").dblclick()
    expect(page.locator("#page-status")).to_contain_text("Created impatient")
    page.wait_for_load_state("networkidle")
    listed = acme["admin"].client.get(f"/api/v1/clusters/{cluster['id']}/deployments").json()
    assert [d["name"] for d in listed].count("impatient") == 1
