"""Prometheus metrics. Process-wide, like the default registry they live in."""

from prometheus_client import Counter, Histogram

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
