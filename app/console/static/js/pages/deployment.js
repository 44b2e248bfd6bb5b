import { call, latest } from "../api.js";
import { params, poll, signedIn, start, useOrg } from "../shell.js";
import { $, actionButton, badge, h, onSubmit, pageStatus, refill, resources, show, time } from "../ui.js";
import { describeEvent } from "../words.js";

const deploymentId = params.deploymentId;
const FINISHED = new Set(["completed", "failed", "cancelled", "expired"]);

function details(d) {
  const rows = [
    ["Model", d.model],
    ["Resources", resources(d.resources)],
    ["Priority", String(d.priority)],
    ["Preemption policy", d.preemption_policy],
    ["Status reason", d.status_reason ?? "—"],
    ["Queue position", d.queue_position === null ? "—" : String(d.queue_position)],
    ["Preempted", `${d.preemption_count} time${d.preemption_count === 1 ? "" : "s"}`],
    ["Serving", d.serving ? (d.serving.ready === null ? "not checked yet" : d.serving.ready ? "ready" : `not ready: ${d.serving.reason}`) : "—"],
    ["Created", time(d.created_at)],
    ["Started", time(d.started_at)],
    ["Finished", time(d.finished_at)],
  ];
  if (d.protected_until) rows.push(["Protected until", time(d.protected_until)]);
  if (d.stops_at) rows.push(["Stops at", time(d.stops_at)]);
  if (d.estimated_start_at) rows.push(["Estimated start", time(d.estimated_start_at)]);
  return rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
}

function output(p) {
  if (p.status === "completed") return JSON.stringify(p.output);
  return p.error ?? "";
}

function predictionRow(p) {
  return h("tr", { "data-prediction": p.prediction_id }, h("td", {}, time(p.created_at)), h("td", {}, badge(p.status)), h("td", {}, p.input), h("td", { class: "output" }, output(p)));
}

let current = null;

async function refresh() {
  const [d, events, predictions] = await Promise.all([
    call("deployment", { deployment_id: deploymentId }).then((r) => r.data),
    latest("deploymentEvents", { deployment_id: deploymentId }, 50).then((r) => r.data),
    latest("predictions", { deployment_id: deploymentId }, 20).then((r) => r.data),
  ]);
  current = d;
  $("#deployment-name").textContent = d.name;
  show("#deployment-status", badge(d.status));
  refill("#details", d, details);
  $("#pending-reason").textContent = d.pending?.message ?? "";
  const names = new Map([[d.id, d.name]]);
  refill("#events", events, () => events.map((e) => h("li", { "data-type": e.type }, time(e.at), " ", describeEvent({ ...e, deployment_name: d.name }, names))));
  predictions.reverse();
  refill($("#predictions tbody"), predictions, () => (predictions.length ? predictions.map(predictionRow) : h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No prediction yet."))));
  return d;
}

function endActions(me, role) {
  const mayEnd = role === "admin" || (role === "developer" && current.created_by === me.id);
  const alert = $("#end-alert");
  refill("#end-actions", [current.status, mayEnd], () => {
  const buttons = [];
  if (mayEnd && ["running", "preempting"].includes(current.status)) {
    buttons.push(actionButton("Complete", async () => {
      await call("completeDeployment", { deployment_id: deploymentId });
      await refresh();
      endActions(me, role);
    }, { alertTarget: alert }));
  }
  if (mayEnd && ["pending", "running", "preempting"].includes(current.status)) {
    buttons.push(actionButton("Cancel deployment", async () => {
      await call("cancelDeployment", { deployment_id: deploymentId });
      await refresh();
      endActions(me, role);
    }, { kind: "danger", confirmText: `Cancel ${current.name}? Its pending dependents fail.`, alertTarget: alert }));
  }
  return buttons;
  });
}

function showPrediction(p) {
  $("#result").hidden = false;
  const rows = [["Prediction", p.prediction_id], ["Status", badge(p.status)]];
  if (p.status === "completed") rows.push(["Output", h("code", { class: "output" }, JSON.stringify(p.output))]);
  if (p.error) rows.push(["Error", p.error]);
  if (!FINISHED.has(p.status)) rows.push(["", "Still being processed; this page checks again every 2 seconds."]);
  show("#result-details", rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  // The panel shows only predictions this page just made: the caller's own, which they may cancel.
  show("#result-actions", !FINISHED.has(p.status) && p.prediction_id !== "…" ? actionButton("Cancel prediction", async () => {
    await call("cancelPrediction", { prediction_id: p.prediction_id });
  }) : []);
}

/** Polls an asynchronous prediction until it finishes (the API answers 400 until then). */
async function follow(predictionId) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    try {
      const p = (await call("prediction", { prediction_id: predictionId })).data;
      showPrediction(p);
      await refresh();
      return;
    } catch (error) {
      if (error.code !== "prediction_pending") throw error;
    }
  }
}

start(async () => {
  const me = await signedIn();
  const d = await refresh();
  const role = useOrg(me, d.organization_id);
  document.title = `${d.name} · MLOps console`;
  const cluster = (await call("cluster", { cluster_id: d.cluster_id })).data;
  const back = $("#cluster-link");
  back.href = `/console/clusters/${cluster.id}`;
  back.textContent = `Cluster ${cluster.name}`;
  endActions(me, role);
  poll(async () => {
    await refresh();
    endActions(me, role);
  }, 5);
  if (role !== "developer" && role !== "admin") return;
  onSubmit($("#predict"), async (body) => {
    const asynchronous = $("#predict-async").checked;
    const headers = asynchronous ? { "Async-Mode": "true" } : {};
    showPrediction({ prediction_id: "…", status: asynchronous ? "queued" : "running" });
    try {
      const answer = await call("predict", { deployment_id: deploymentId }, { body, headers });
      if (answer.status === 202) {
        if (answer.data.warning) pageStatus(answer.data.warning);
        showPrediction({ prediction_id: answer.data.prediction_id, status: "queued" });
        follow(answer.data.prediction_id).catch((error) => pageStatus(error.message, "error"));
      } else {
        showPrediction(answer.data);
        await refresh();
      }
    } catch (error) {
      $("#result").hidden = true;
      throw error;
    }
  });
});
