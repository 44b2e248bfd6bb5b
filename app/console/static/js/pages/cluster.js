import { call, latest } from "../api.js";
import { capacityBars, timeline } from "../charts.js";
import { params, poll, signedIn, start, useOrg } from "../shell.js";
import { $, actionButton, badge, clearErrors, h, number, onSubmit, pageStatus, refill, resources, show, time } from "../ui.js";
import { describeEvent, outcomeOfDryRun } from "../words.js";

const clusterId = params.clusterId;
const names = new Map();

function link(deployment) {
  return h("a", { href: `/console/deployments/${deployment.id}` }, deployment.name);
}

function runningRow(d) {
  return h(
    "tr",
    { "data-deployment": d.id },
    h("td", {}, link(d)),
    h("td", {}, String(d.priority)),
    h("td", {}, resources(d.resources)),
    h("td", {}, badge(d.status), d.evict_at ? h("span", { class: "hint" }, " leaves ", time(d.evict_at)) : null),
    h("td", {}, time(d.started_at)),
  );
}

/** The reason in a few words; the scheduler's whole sentence one click (or Enter) away. */
function whyItWaits(d) {
  const reason = (d.pending?.reason ?? d.status_reason ?? "").replaceAll("_", " ");
  if (!d.pending?.message) return reason;
  return h("details", {}, h("summary", {}, reason), h("p", { class: "hint" }, d.pending.message));
}

function emptyRow(text) {
  return h("tr", {}, h("td", { colspan: 5, class: "hint" }, text));
}

function queueRow(d) {
  return h(
    "tr",
    { "data-deployment": d.id },
    h("td", {}, d.queue_position === null ? "—" : String(d.queue_position)),
    h("td", {}, link(d)),
    h("td", {}, String(d.priority)),
    h("td", {}, whyItWaits(d)),
    h("td", {}, d.estimated_start_at ? time(d.estimated_start_at) : "unknown"),
  );
}

const LIST_LIMIT = 200;
const EVENTS_SHOWN = 100;
let events = [];

/** The cluster's deployments in one status; none asked for when its count says there are none. */
async function listed(status, count) {
  if (count === 0) return [];
  return (await call("clusterDeployments", { cluster_id: clusterId }, { query: { status, limit: LIST_LIMIT } })).data;
}

const eventKey = (e) => `${e.at}|${e.deployment_id}|${e.type}`;

/**
 * The latest events, newest first. After the first read only what is new is asked for (`since` the
 * newest one known, inclusive: the events of that very moment come again and are matched up), so a
 * poll costs the same however long the cluster's history.
 */
async function latestEvents() {
  const query = { limit: EVENTS_SHOWN };
  if (events.length) query.since = events[0].at;
  const fresh = (await call("clusterEvents", { cluster_id: clusterId }, { query })).data;
  if (!events.length || fresh.length === EVENTS_SHOWN) return fresh;
  const known = new Set(events.map(eventKey));
  return [...fresh.filter((e) => !known.has(eventKey(e))), ...events].slice(0, EVENTS_SHOWN);
}

async function refresh() {
  const cluster = (await call("cluster", { cluster_id: clusterId })).data;
  const [running, preempting, pending, newest] = await Promise.all([
    listed("running", cluster.running_count),
    listed("preempting", cluster.preempting_count),
    listed("pending", cluster.pending_count),
    latestEvents(),
  ]);
  events = newest;
  for (const d of [...running, ...preempting, ...pending]) names.set(d.id, d.name);
  for (const e of events) names.set(e.deployment_id, e.deployment_name);
  $("#cluster-name").textContent = cluster.name;
  $("#cluster-strategy").textContent = `strategy ${cluster.preemption_strategy}, grace ${cluster.preemption_grace_seconds} s`;
  show("#capacity", capacityBars(cluster));
  $("#counts").textContent = `${cluster.running_count} running · ${cluster.preempting_count} preempting · ${cluster.pending_count} pending`;
  const active = [...running, ...preempting];
  refill($("#running tbody"), active, () => (active.length ? active.map(runningRow) : emptyRow("Nothing running.")));
  pending.sort((a, b) => (a.queue_position ?? Infinity) - (b.queue_position ?? Infinity));
  const more = cluster.pending_count > LIST_LIMIT ? h("tr", {}, h("td", { colspan: 5, class: "hint" }, `The first ${LIST_LIMIT} of ${cluster.pending_count} waiting are shown.`)) : null;
  refill($("#queue tbody"), pending, () => (pending.length ? [...pending.map(queueRow), more] : emptyRow("The queue is empty.")));
  const width = Math.max(320, $("#timeline").clientWidth || 800);
  show("#timeline", events.length ? timeline(events, Date.now(), width) : h("p", { class: "hint" }, "No events yet."));
  refill("#events", events.slice(0, 30), (shown) => shown.map((e) => h("li", { "data-type": e.type }, time(e.at), " ", describeEvent(e, names))));
  $("#updated").textContent = `Last updated ${new Date().toLocaleTimeString()}.`;
  return cluster;
}

async function setUpDeploying(orgId) {
  const [models, deployments] = await Promise.all([
    call("models").then((r) => r.data),
    latest("orgDeployments", { org_id: orgId }, LIST_LIMIT).then((r) => r.data.reverse()),
  ]);
  show("#deploy-model", models.map((m) => h("option", { value: m.name }, `${m.name} (${m.task})${m.available ? "" : " · not available now"}`)));
  show("#deploy-depends-on", deployments.filter((d) => !["failed", "cancelled"].includes(d.status)).map((d) => h("option", { value: d.id }, `${d.name} (${d.status})`)));
  const form = $("#deploy");
  const preview = $("#preview");
  let previewed = null;
  const hidePreview = () => {
    preview.hidden = true;
    previewed = null;
  };
  form.addEventListener("input", hidePreview);
  onSubmit(form, async (body) => {
    const { data } = await call("createDeployment", { cluster_id: clusterId }, { body, query: { dry_run: "true" } });
    previewed = body;
    $("#preview-outcome").textContent = outcomeOfDryRun(data);
    show("#preview-evicts", data.evicts.map((v) => h("li", { "data-deployment": v.id }, `Evicts ${v.name} (priority ${v.priority})`)));
    $("#preview-alert").textContent = "";
    preview.dataset.wouldStart = String(data.would_start);
    preview.hidden = false;
    preview.focus();
  });
  $("#edit-deploy").addEventListener("click", () => {
    hidePreview();
    $("#deploy-name").focus();
  });
  const confirm = $("#confirm-deploy");
  confirm.addEventListener("click", async () => {
    if (!previewed) return;
    const body = previewed;
    previewed = null; // a second click creates nothing more
    confirm.disabled = true;
    try {
      const created = (await call("createDeployment", { cluster_id: clusterId }, { body })).data;
      hidePreview();
      form.reset();
      clearErrors(form);
      pageStatus(`Created ${created.name}: ${created.status}${created.queue_position ? `, position ${created.queue_position}` : ""}.`);
      await refresh();
    } catch (error) {
      if (error.status === undefined) throw error;
      previewed = body;
      $("#preview-alert").textContent = error.message;
    } finally {
      confirm.disabled = false;
    }
  });
}

function setUpSettings(cluster, strategies) {
  const form = $("#settings");
  show("#settings-preemption-strategy", strategies.map((s) => h("option", { value: s.name, title: s.description }, s.name)));
  form.elements.namedItem("name").value = cluster.name;
  for (const key of ["cpu", "ram_gb", "gpu"]) form.elements.namedItem(`capacity.${key}`).value = number(cluster.capacity[key]);
  form.elements.namedItem("preemption_strategy").value = cluster.preemption_strategy;
  form.elements.namedItem("preemption_grace_seconds").value = cluster.preemption_grace_seconds;
  onSubmit(form, async (body) => {
    await call("updateCluster", { cluster_id: clusterId }, { body });
    pageStatus("Cluster saved.");
    await refresh();
  });
  $("#delete-cluster").replaceWith(
    actionButton("Delete cluster", async () => {
      await call("deleteCluster", { cluster_id: clusterId });
      location.assign(`/console/orgs/${cluster.organization_id}`);
    }, { kind: "danger", confirmText: `Delete the cluster ${cluster.name}?`, alertTarget: $("#delete-alert") }),
  );
}

start(async () => {
  const me = await signedIn();
  const cluster = await refresh();
  const role = useOrg(me, cluster.organization_id);
  document.title = `${cluster.name} · MLOps console`;
  poll(refresh);
  if (role === "developer" || role === "admin") await setUpDeploying(cluster.organization_id);
  if (role === "admin") setUpSettings(cluster, (await call("strategies")).data);
});
