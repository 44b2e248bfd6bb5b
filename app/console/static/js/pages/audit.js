import { call } from "../api.js";
import { params, signedIn, start, useOrg } from "../shell.js";
import { $, h, pageStatus, show, time } from "../ui.js";

const orgId = params.orgId;
const PAGE = 50;
const ACTIONS = [
  "organization.created", "organization.deleted", "organization.invite_rotated", "organization.webhook_secret_rotated",
  "membership.joined", "membership.role_changed", "membership.removed", "membership.left",
  "cluster.created", "cluster.updated", "cluster.deleted",
  "deployment.created", "deployment.completed", "deployment.cancelled",
  "api_key.created", "api_key.revoked", "prediction.cancelled",
];

function change(entry) {
  const parts = [];
  if (entry.before) parts.push(`before ${JSON.stringify(entry.before)}`);
  if (entry.after) parts.push(`after ${JSON.stringify(entry.after)}`);
  return h("code", { class: "change" }, parts.join(" · "));
}

function row(entry) {
  return h(
    "tr",
    { "data-action": entry.action },
    h("td", {}, time(entry.at)),
    h("td", {}, entry.actor_name ?? entry.actor_type, entry.actor_type === "api_key" ? h("span", { class: "hint" }, " (API key)") : null),
    h("td", {}, entry.action),
    h("td", {}, `${entry.target_type} ${entry.target_id?.slice(0, 8) ?? ""}`),
    h("td", {}, change(entry)),
  );
}

start(async () => {
  const me = await signedIn();
  const role = useOrg(me, orgId);
  $("#org-name").textContent = me.organizations.find((o) => o.id === orgId)?.name ?? "";
  if (role !== "admin") {
    show($("#audit tbody"), h("tr", {}, h("td", { colspan: 5 }, "Only the organization's admins read its audit log.")));
    return;
  }
  const filter = $("#filter-action");
  filter.append(...ACTIONS.map((action) => h("option", { value: action }, action)));
  const older = $("#older");
  let offset = 0;
  let generation = 0; // a filter change makes every answer still on its way stale
  const load = async (append) => {
    const mine = ++generation;
    const { data, total } = await call("audit", { org_id: orgId }, { query: { action: filter.value, limit: PAGE, offset: append ? offset : 0 } });
    if (mine !== generation) return;
    if (!append) offset = 0;
    const rows = data.map(row);
    if (append) $("#audit tbody").append(...rows);
    else show($("#audit tbody"), rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "hint" }, "Nothing recorded.")));
    offset += data.length;
    older.hidden = offset >= total;
  };
  const report = (error) => pageStatus(error.message, "error");
  filter.addEventListener("change", () => load(false).catch(report));
  older.addEventListener("click", () => load(true).catch(report));
  await load(false);
});
