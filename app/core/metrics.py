"""Prometheus metrics. Process-wide, like the default registry they live in."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method, route template and status.",
    ["method", "route", "status"],
)
SCHEDULING_DECISIONS = Counter(
    "mlops_scheduling_decisions_total",
    "Scheduler decisions applied, by kind (started, evicted, failed).",
    ["decision"],
)
PREEMPTIONS = Counter("mlops_preemptions_total", "Running deployments evicted by preemption.")
DEPLOYMENTS = Gauge(
    "mlops_deployments", "Deployments by status (read from the database at scrape).", ["status"]
)
