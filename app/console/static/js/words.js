// The API's data said in words, the same on every page.

/** What a dry run says creating the deployment would do. */
export function outcomeOfDryRun(run) {
  if (run.would_start) {
    return run.evicts.length
      ? `It would start at once, evicting ${run.evicts.length} deployment${run.evicts.length === 1 ? "" : "s"}.`
      : "It would start at once.";
  }
  if (run.status === "failed") return `It would fail at once: ${run.status_reason}.`;
  const where = run.queue_position ? `at position ${run.queue_position}` : "for its dependencies";
  const estimate = run.estimated_start_at ? ` Estimated start: ${new Date(run.estimated_start_at).toLocaleString()}.` : "";
  return `It would wait ${where}. ${run.pending?.message ?? ""}${estimate}`.trim();
}

/** One event of a deployment, named, with its preemptor's name where there is one. */
export function describeEvent(event, names) {
  const who = event.deployment_name ?? "";
  const by = event.detail?.preempted_by;
  const byName = by ? names.get(by) ?? by.slice(0, 8) : "";
  switch (event.type) {
    case "preempted":
      return `${who} was preempted by ${byName}`.trim();
    case "preempting":
      return `${who} is being evicted for ${byName}, leaving at ${new Date(event.detail.evict_at).toLocaleTimeString()}`.trim();
    case "scheduled":
      return `${who} started`.trim();
    case "requeued":
      return `${who} went back to the queue`.trim();
    case "completed":
      return event.detail?.reason ? `${who} completed (${event.detail.reason})`.trim() : `${who} completed`.trim();
    case "failed":
      return `${who} failed (${event.detail?.reason})`.trim();
    case "serving":
      return `${who} serving: ${event.detail?.ready ? "ready" : `not ready, ${event.detail?.reason}`}`.trim();
    default:
      return `${who} ${event.type}`.trim();
  }
}
