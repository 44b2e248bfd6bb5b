// The two drawings of the console, in plain SVG: a cluster's capacity bars, and its timeline with
// preemptions drawn as arrows from the preemptor to its victim.

import { h, number, s } from "./ui.js";

const RESOURCES = [
  ["cpu", "CPU", "cores"],
  ["ram_gb", "RAM", "GiB"],
  ["gpu", "GPU", "GPUs"],
];

/** One bar per resource: capacity as the track, allocated filled, with the numbers in words. */
export function capacityBars(cluster) {
  return h(
    "div",
    { class: "bars" },
    RESOURCES.map(([key, label, unit]) => {
      const capacity = cluster.capacity[key];
      const allocated = cluster.allocated[key];
      const share = capacity > 0 ? Math.min(1, allocated / capacity) : 0;
      const words = `${label}: ${number(allocated)} of ${number(capacity)} ${unit} allocated, ${number(cluster.available[key])} available`;
      return h(
        "div",
        { class: "bar-row" },
        h("span", { class: "bar-label" }, label),
        s(
          "svg",
          {
            class: "bar",
            role: "img",
            "aria-label": words,
            viewBox: "0 0 100 10",
            preserveAspectRatio: "none",
            "data-resource": key,
            "data-allocated": allocated,
            "data-capacity": capacity,
          },
          s("title", {}, words),
          s("rect", { class: "bar-track", x: 0, y: 0, width: 100, height: 10, rx: 2 }),
          s("rect", { class: "bar-fill", x: 0, y: 0, width: (share * 100).toFixed(2), height: 10, rx: 2 }),
        ),
        h("span", { class: "bar-numbers" }, `${number(allocated)} / ${number(capacity)}`),
      );
    }),
  );
}

const ENDS = new Set(["preempted", "completed", "cancelled", "failed"]);
const RAN_BEFORE = new Set(["preempting", "preempted", "completed", "serving"]);
const LANE = 30;
const AXIS = 24;
const MAX_LANES = 12;

/**
 * The timeline of a cluster's events (newest first, as the API lists them): a lane per
 * deployment with its runs as bars, and a vertical arrow per preemption from the preemptor's lane
 * to the victim's, at the moment it happened.
 */
export function timeline(events, now, width) {
  const ordered = [...events].reverse();
  const lanes = [];
  for (const event of ordered) {
    if (!lanes.some((lane) => lane.id === event.deployment_id)) {
      lanes.push({ id: event.deployment_id, name: event.deployment_name, runs: [], open: null, grace: null, seen: false });
    }
  }
  const shown = lanes.slice(-MAX_LANES);
  const start = ordered.length ? Date.parse(ordered[0].at) : now - 60_000;
  const span = Math.max(1000, now - start);
  const label = Math.min(160, Math.round(width * 0.3));
  const x = (at) => label + ((Date.parse(at) - start) / span) * (width - label - 12);
  const laneOf = (id) => shown.findIndex((lane) => lane.id === id);
  const y = (index) => AXIS + index * LANE + LANE / 2;

  for (const event of ordered) {
    const lane = shown[laneOf(event.deployment_id)];
    if (!lane) continue;
    // Its first event in the window may end a run that began before it: only these say it ran.
    if (!lane.seen && RAN_BEFORE.has(event.type)) lane.open = ordered[0].at;
    lane.seen = true;
    if (event.type === "scheduled") lane.open = event.at;
    if (event.type === "preempting") lane.grace = event.at;
    if (ENDS.has(event.type)) {
      // A deployment cancelled or failed while it waited ends no run.
      if (lane.open) lane.runs.push({ from: lane.open, to: event.at, grace: lane.grace });
      lane.open = lane.grace = null;
    }
  }
  const nowIso = new Date(now).toISOString();
  const height = AXIS + Math.max(1, shown.length) * LANE + 8;
  const svg = s(
    "svg",
    { class: "timeline", viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": "Timeline" },
    s("title", {}, `Runs of ${shown.length} deployments and their preemptions`),
    s("defs", {}, s("marker", { id: "arrowhead", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    s("text", { x: label, y: 14, class: "axis" }, new Date(start).toLocaleTimeString()),
    s("text", { x: width - 12, y: 14, class: "axis", "text-anchor": "end" }, "now"),
  );
  shown.forEach((lane, index) => {
    const runs = [...lane.runs];
    if (lane.open) runs.push({ from: lane.open, to: nowIso, grace: lane.grace });
    const group = s("g", { class: "lane", "data-deployment": lane.id }, s("text", { x: 4, y: y(index) + 4, class: "lane-name" }, lane.name.length > 22 ? `${lane.name.slice(0, 21)}…` : lane.name));
    for (const run of runs) {
      const from = x(run.from);
      group.append(s("rect", { class: "run", x: from, y: y(index) - 8, width: Math.max(2, x(run.to) - from), height: 16, rx: 3 }, s("title", {}, `${lane.name} ran from ${run.from} to ${run.to === nowIso ? "now" : run.to}`)));
      if (run.grace) group.append(s("rect", { class: "run-grace", x: x(run.grace), y: y(index) - 8, width: Math.max(2, x(run.to) - x(run.grace)), height: 16 }));
    }
    svg.append(group);
  });
  for (const event of ordered.filter((e) => e.type === "preempted")) {
    const victim = laneOf(event.deployment_id);
    const preemptor = laneOf(event.detail.preempted_by);
    if (victim < 0 || preemptor < 0) continue;
    const at = x(event.at);
    const words = `${shown[preemptor].name} preempted ${shown[victim].name}`;
    svg.append(
      s(
        "g",
        { class: "preemption", "data-preemptor": shown[preemptor].id, "data-victim": shown[victim].id },
        s("title", {}, `${words} at ${event.at}`),
        s("line", { x1: at, y1: y(preemptor), x2: at, y2: y(victim) + (victim > preemptor ? -9 : 9), "marker-end": "url(#arrowhead)" }),
      ),
    );
  }
  return svg;
}
