// What every signed-in page shares: who the caller is, the navigation with the organization
// switcher, sign out, showing each control only to the roles the API would let use it, and
// polling that pauses while the tab is hidden.

import { call } from "./api.js";
import { $, $$, h, pageStatus } from "./ui.js";

const RANK = { viewer: 0, developer: 1, admin: 2 };
const LAST_ORG = "console.org";

export const params = document.body.dataset;

export function atLeast(role, needed) {
  return RANK[role] >= RANK[needed];
}

/**
 * Reveals the `[data-needs=role]` parts of the page the caller's role may use, and removes the
 * others from the document (a viewer's page has no admin control at all, hidden or not). The API
 * would refuse them anyway: this only spares people buttons that cannot work.
 */
export function reveal(role, root = document) {
  for (const part of $$("[data-needs]", root)) {
    if (role && atLeast(role, part.dataset.needs)) part.hidden = false;
    else part.remove();
  }
}

/** Signs the page in: who is calling (the sign-in page otherwise) and the navigation. */
export async function signedIn() {
  const me = (await call("me")).data;
  $("#whoami").textContent = me.username;
  $("#sign-out").addEventListener("click", async () => {
    await call("logout");
    localStorage.removeItem(LAST_ORG);
    location.assign("/console/sign-in");
  });
  $("#nav").hidden = false;
  return me;
}

/** Points the navigation at `orgId` (the one this page belongs to) and gates by the caller's role. */
export function useOrg(me, orgId) {
  const membership = me.organizations.find((org) => org.id === orgId);
  const switcher = $("#org-switcher");
  switcher.replaceChildren(
    ...(membership ? [] : [h("option", { value: "" }, "Choose an organization")]),
    ...me.organizations.map((org) => h("option", { value: org.id, selected: org.id === orgId }, `${org.name} (${org.role})`)),
  );
  switcher.onchange = () => switcher.value && location.assign(`/console/orgs/${switcher.value}`);
  for (const link of $$("[data-nav]")) {
    if (membership) link.href = `/console/orgs/${orgId}${link.dataset.nav}`;
    link.closest("li").hidden = !membership;
    if (link.pathname === location.pathname) link.setAttribute("aria-current", "page");
  }
  if (membership) localStorage.setItem(LAST_ORG, orgId);
  reveal(membership?.role);
  return membership?.role;
}

export function lastOrg() {
  return localStorage.getItem(LAST_ORG);
}

/** Runs the page's `main`, reporting a failure at the top of the page instead of leaving it blank. */
export function start(main) {
  main()
    .catch((error) => {
      if (error.status === 401) return;
      pageStatus(error.status === 404 ? "Not found, or not yours to see." : error.message, "error");
    })
    .finally(() => (document.body.dataset.ready = "true"));
}

/**
 * Calls `refresh` every `seconds` while the tab is visible: stopped while hidden, run at once when
 * it shows again. Never two at a time.
 */
export function poll(refresh, seconds = 3) {
  let timer = null;
  let running = false;
  const tick = async () => {
    timer = null;
    if (document.hidden || running) return;
    running = true;
    try {
      await refresh();
      if ($("#page-status").classList.contains("error")) pageStatus(""); // the trouble has passed
    } catch (error) {
      if (error.status === undefined) throw error;
      pageStatus(error.message, "error");
    } finally {
      running = false;
      schedule();
    }
  };
  const schedule = () => {
    if (timer === null && !document.hidden) timer = setTimeout(tick, seconds * 1000);
  };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (timer === null && !running) {
      tick();
    }
  });
  schedule();
}
