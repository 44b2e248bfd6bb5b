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
PREDICTIONS = Counter(
    "mlops_predictions_total", "Predictions finished, by model and outcome.", ["model", "status"]
)
PREDICTION_DURATION = Histogram(
    "mlops_prediction_duration_seconds",
    "Time a worker spent running one prediction's model call, by model.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120),
)
PREDICTION_QUEUE_DEPTH = Gauge(
    "mlops_prediction_queue_depth", "Predictions queued (read from the database at scrape)."
)
