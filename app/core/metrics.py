"""Prometheus metrics.

Counters and histograms live in the process that moves them. When several processes serve (`mlops
serve --workers N`), prometheus-client's multiprocess mode keeps each process's values in files
under `PROMETHEUS_MULTIPROC_DIR`, and a scrape sums them, so a counter does not depend on which
process answered. What describes shared state (deployments by status, the queue depth) is not a
per-process value at all: it is read from the database at scrape time.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

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
NOTIFICATIONS = Counter(
    "mlops_notifications_received_total",
    "PostgreSQL notifications received by this process's listener, by channel.",
    ["channel"],
)
PREEMPTIONS = Counter("mlops_preemptions_total", "Running deployments evicted by preemption.")
TIME_TO_START = Histogram(
    "mlops_deployment_time_to_start_seconds",
    "Time from a deployment's creation to its first start.",
    buckets=(0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
EVICTIONS_AVOIDED = Counter(
    "mlops_evictions_avoided_by_protection_total",
    "Evictions a newcomer would have made but for the victims' minimum runtime (it waited).",
)
RUNTIME_ENDED = Counter(
    "mlops_runs_max_runtime_reached_total",
    "Running deployments completed because their run reached max_runtime_seconds.",
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


# eq=False: a registry keys its collectors by identity.
@dataclass(frozen=True, slots=True, eq=False)
class SharedState(Collector):
    """Gauges of what every process shares, as read from the database for one scrape."""

    deployments: Mapping[str, int]  # by status
    not_serving: Mapping[str, int]  # running deployments whose model cannot serve, by model
    queue_depth: int
    oldest_queued_seconds: float  # 0 when nothing waits
    workers_alive: int
    pending_by_reason: Mapping[str, int]  # the `pending.reason` of each pending deployment

    def collect(self) -> Iterable[Metric]:
        yield _by_label("mlops_deployments", "Deployments by status.", "status", self.deployments)
        yield _by_label(
            "mlops_pending_deployments",
            "Pending deployments by the reason they wait (their pending.reason).",
            "reason",
            self.pending_by_reason,
        )
        yield _by_label(
            "mlops_deployments_not_serving",
            "Running deployments whose model the workers cannot serve, by model.",
            "model",
            self.not_serving,
        )
        yield GaugeMetricFamily(
            "mlops_prediction_queue_depth", "Predictions queued.", value=self.queue_depth
        )
        yield GaugeMetricFamily(
            "mlops_prediction_oldest_queued_seconds",
            "Age of the oldest queued prediction (0 when none waits).",
            value=self.oldest_queued_seconds,
        )
        yield GaugeMetricFamily(
            "mlops_workers_alive",
            "Prediction workers with a recent heartbeat.",
            value=self.workers_alive,
        )


def _by_label(name: str, help_text: str, label: str, values: Mapping[str, int]) -> Metric:
    family = GaugeMetricFamily(
        name, f"{help_text} Read from the database at scrape.", labels=[label]
    )
    for key, count in sorted(values.items()):
        family.add_metric([key], count)
    return family


def process_registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """This process's metrics; with a multiprocess directory, every process's, summed."""
    if not multiprocess_dir:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return registry


def exposition(multiprocess_dir: str | None, shared: SharedState | None) -> bytes:
    """What a scrape gets: the processes' counters and histograms, then the shared gauges (left
    out when the database could not be read: absent, not stale)."""
    text = generate_latest(process_registry(multiprocess_dir))
    if shared is None:
        return text
    state = CollectorRegistry()
    state.register(shared)
    return text + generate_latest(state)
