import { call } from "../api.js";
import { capacityBars } from "../charts.js";
import { params, poll, signedIn, start, useOrg } from "../shell.js";
import { $, h, onSubmit, show } from "../ui.js";

function tile(cluster) {
  return h(
    "li",
    { class: "tile cluster-tile", "data-cluster": cluster.id },
    h("h2", {}, h("a", { href: `/console/clusters/${cluster.id}` }, cluster.name)),
    h("p", { class: "hint" }, `Strategy ${cluster.preemption_strategy}`),
    capacityBars(cluster),
    h("p", { class: "counts" }, `${cluster.running_count} running · ${cluster.pending_count} pending · ${cluster.preempting_count} preempting`),
  );
}

start(async () => {
  const me = await signedIn();
  const role = useOrg(me, params.orgId);
  const org = (await call("org", { org_id: params.orgId })).data;
  $("#org-name").textContent = org.name;
  document.title = `Clusters of ${org.name} · MLOps console`;
  const refresh = async () => {
    const { data } = await call("clusters", { org_id: params.orgId }, { query: { limit: 200 } });
    show("#clusters", data.length ? data.map(tile) : h("li", { class: "hint" }, "No cluster yet."));
  };
  await refresh();
  poll(refresh);
  if (role !== "admin") return;
  const strategies = (await call("strategies")).data;
  show("#create-cluster-preemption-strategy", strategies.map((s) => h("option", { value: s.name, title: s.description }, `${s.name}: ${s.description}`)));
  onSubmit($("#create-cluster"), async (body) => {
    const cluster = (await call("createCluster", { org_id: params.orgId }, { body })).data;
    location.assign(`/console/clusters/${cluster.id}`);
  });
});
