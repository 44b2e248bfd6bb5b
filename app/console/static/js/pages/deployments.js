import { call, latest } from "../api.js";
import { params, poll, signedIn, start, useOrg } from "../shell.js";
import { $, badge, h, pageStatus, refill, time } from "../ui.js";

const orgId = params.orgId;
const LIMIT = 200;

start(async () => {
  const me = await signedIn();
  useOrg(me, orgId);
  const [org, clusters] = await Promise.all([
    call("org", { org_id: orgId }).then((r) => r.data),
    call("clusters", { org_id: orgId }, { query: { limit: 200 } }).then((r) => r.data),
  ]);
  $("#org-name").textContent = org.name;
  const clusterNames = new Map(clusters.map((c) => [c.id, c.name]));
  const filter = $("#filter-status");
  const refresh = async () => {
    const { data, total } = await latest("orgDeployments", { org_id: orgId }, LIMIT, { status: filter.value });
    data.reverse(); // newest first
    refill($("#deployments tbody"), data, () =>
      data.length
        ? data.map((d) => h("tr", { "data-deployment": d.id },
            h("td", {}, h("a", { href: `/console/deployments/${d.id}` }, d.name)),
            h("td", {}, h("a", { href: `/console/clusters/${d.cluster_id}` }, clusterNames.get(d.cluster_id) ?? "cluster")),
            h("td", {}, d.model), h("td", {}, String(d.priority)), h("td", {}, badge(d.status)), h("td", {}, time(d.created_at))))
        : h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No deployment."),
    ));
    $("#more").textContent = total > LIMIT ? `Showing the latest ${LIMIT} of ${total}.` : "";
  };
  filter.addEventListener("change", () => refresh().catch((error) => pageStatus(error.message, "error")));
  await refresh();
  poll(refresh, 5);
});
