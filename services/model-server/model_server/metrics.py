"""Every Prometheus metric of the model server, in one place.

Metric contract (names and labels are used by the monitoring rules and dashboards; add, do
not rename):

===================================================  ========  =====================================
metric                                               type      labels / meaning
===================================================  ========  =====================================
modelfleet_requests_total                            counter   model, version, endpoint, status
modelfleet_request_duration_seconds                  histogram model, version, endpoint
modelfleet_prediction_rows                           histogram model, version: rows per request
modelfleet_predictions_total                         counter   model, version, class (answer)
modelfleet_errors_total                              counter   model, reason (``ERROR_CODES``)
modelfleet_requests_in_flight                        gauge     livesum over workers
modelfleet_busy_workers                              gauge     livesum: workers with >= 1 request
modelfleet_workers                                   gauge     livesum: live worker processes
modelfleet_model_info                                gauge     model, version, sha256, current
modelfleet_model_ready                               gauge     model: its current version loaded
modelfleet_replica_info                              gauge     replica, release; 1 (livemax)
modelfleet_container_cpu_seconds_total               counter   CPU time of the replica's container
modelfleet_container_memory_working_set_bytes        gauge     its memory, less reclaimable cache
modelfleet_container_memory_limit_bytes              gauge     its memory limit (absent: none)
modelfleet_container_cpu_limit_cores                 gauge     its CPU limit (absent: none)
modelfleet_rollouts_total                            counter   model, outcome: the rollout history
===================================================  ========  =====================================

Label values are bounded: ``model`` is a loaded model's name or ``none``; ``version`` a loaded
version of it (the one that answered, so a rollout's gates can compare versions on the same
traffic) or ``none``; ``endpoint`` is one of ``ENDPOINTS``; ``reason`` one of ``ERROR_CODES``.

Multiprocess mode (gunicorn): prometheus-client picks its value storage when it is first
imported, from ``PROMETHEUS_MULTIPROC_DIR`` (set by docker-entrypoint.sh, wiped at every
start). Metrics are then written to per-pid files, every scrape aggregates them with a fresh
``CollectorRegistry`` + ``MultiProcessCollector``, and gunicorn's ``child_exit`` hook calls
``mark_process_dead`` so the ``live*`` gauges drop dead workers. Without the variable (unit
tests, ``make serve``) the metrics live in an ordinary in-process registry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from model_server.core.errors import ERROR_CODES

#: Bounded values of the ``endpoint`` label (``other``: a path that matches no route).
ENDPOINTS: Final = (
    "plumber",
    "predict",
    "invocations",
    "infer",
    "metadata",
    "models",
    "health",
    "other",
)
#: Endpoints that run predictions; their series are pre-initialised per model.
PREDICT_ENDPOINTS: Final = ("plumber", "predict", "invocations", "infer")
NO_MODEL: Final = "none"
# Predictions take ~0.1-1 ms; buckets resolve that range and still catch slow outliers.
DURATION_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
ROWS_BUCKETS: Final = (1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000)


class Metrics:
    """The server's metrics, bound to one registry (or to multiprocess files).

    Args:
        multiprocess_dir: ``PROMETHEUS_MULTIPROC_DIR``, or ``None`` for in-process metrics.
        registry: Registry for in-process mode (default: prometheus-client's global one;
            tests pass a fresh ``CollectorRegistry`` per app). Ignored in multiprocess mode,
            where metrics are registered nowhere and collected from files per scrape.
    """

    def __init__(
        self, multiprocess_dir: str | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = None if multiprocess_dir else (registry or REGISTRY)
        reg = self.registry
        self.requests = Counter(
            "modelfleet_requests",
            "HTTP requests by model, the version that answered, route and status code.",
            ["model", "version", "endpoint", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "modelfleet_request_duration_seconds",
            "Time from request start to response, by model, version and route.",
            ["model", "version", "endpoint"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.rows = Histogram(
            "modelfleet_prediction_rows",
            "Rows per successful prediction request.",
            ["model", "version"],
            buckets=ROWS_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            "modelfleet_predictions",
            "Predicted rows by answer (class label; for regression the quartile bin q1-q4 of"
            " the model's value_quartiles, or 'value').",
            ["model", "version", "class"],
            registry=reg,
        )
        self.errors = Counter(
            "modelfleet_errors",
            "Refused or failed requests by model and reason.",
            ["model", "reason"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "modelfleet_requests_in_flight",
            "Requests being processed, summed over live workers.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.busy_workers = Gauge(
            "modelfleet_busy_workers",
            "Workers processing at least one request (saturation: compare with "
            "modelfleet_workers).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.workers = Gauge(
            "modelfleet_workers",
            "Live worker processes serving requests.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        # livemax: every worker sets 1, so one replica exposes one series per model.
        self.model_info = Gauge(
            "modelfleet_model_info",
            'Loaded model versions (value 1) with artifact sha256; current="true" for the version'
            " unversioned routes serve.",
            ["model", "version", "sha256", "current"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        # livemin: the replica reports a model ready only if every live worker has it.
        self.model_ready = Gauge(
            "modelfleet_model_ready",
            "1 if the model's current version is loaded and verified in every live worker.",
            ["model"],
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.replica_info = Gauge(
            "modelfleet_replica_info",
            "Always 1; replica is MODELFLEET_REPLICA_ID (the host name), release"
            " MODELFLEET_RELEASE (the image tag on Swarm).",
            ["replica", "release"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._lock = threading.Lock()
        self._local_in_flight = 0  # this process only, to derive busy_workers
        # Labelled children per label values, so a request skips ``labels()`` (argument checks
        # and a lock per call). Bounded like the label values themselves (see module doc).
        self._request_children: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}
        self._prediction_children: dict[tuple[str, str], tuple[Histogram, dict[str, Counter]]] = {}
        self.container = ContainerCollector()
        #: Set by the app once the models are known (rollout_metrics.py); None: not exported.
        self.rollouts: Collector | None = None

    # -- start-up ---------------------------------------------------------------------------

    def init_server(
        self,
        replica: str,
        loaded: Iterable[tuple[str, str, str, bool]],
        ready: Mapping[str, bool],
        release: str = "",
    ) -> None:
        """Set the info/readiness gauges and pre-initialise every bounded label combination.

        Args:
            replica: The replica id.
            loaded: Every loaded model version: (name, version, sha256, whether current).
            ready: Every model of the index: whether its current version is loaded.
            release: What the replica runs (``MODELFLEET_RELEASE``; empty: no label).
        """
        loaded = list(loaded)
        self.replica_info.labels(replica, release).set(1)
        self.workers.set(1)
        for name, version, sha256, current in loaded:
            self.model_info.labels(name, version, sha256, str(current).lower()).set(1)
            self.rows.labels(name, version)
        for name, is_ready in ready.items():
            self.model_ready.labels(name).set(int(is_ready))
        # Pre-initialise so rate() and absent() work from the first scrape: the requests of
        # each ready model's current version, and of none.
        served = [(n, v) for n, v, _, current in loaded if current and ready.get(n)]
        for model, version in [*served, (NO_MODEL, NO_MODEL)]:
            for endpoint in PREDICT_ENDPOINTS:
                self.requests.labels(model, version, endpoint, "200")
                self.duration.labels(model, version, endpoint)
        for model in [*(n for n, r in ready.items() if r), NO_MODEL]:
            for reason in ERROR_CODES:
                self.errors.labels(model, reason)

    def init_answers(self, model: str, version: str, answers: Iterable[str]) -> None:
        """Pre-initialise ``modelfleet_predictions_total`` for a model version's answers."""
        for answer in answers:
            self.predictions.labels(model, version, answer)

    # -- per request ------------------------------------------------------------------------

    def request_started(self) -> None:
        """Count a request in flight (and this worker as busy)."""
        self.in_flight.inc()
        with self._lock:
            self._local_in_flight += 1
            if self._local_in_flight == 1:
                self.busy_workers.set(1)

    def request_finished(self) -> None:
        """Undo ``request_started``."""
        self.in_flight.dec()
        with self._lock:
            self._local_in_flight -= 1
            if self._local_in_flight == 0:
                self.busy_workers.set(0)

    def observe_request(
        self, model: str, version: str, endpoint: str, status: int, seconds: float
    ) -> None:
        """Count a finished request and its duration, by the model version that answered."""
        key = (model, version, endpoint, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, endpoint, str(status)),
                self.duration.labels(model, version, endpoint),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_prediction(
        self, model: str, version: str, rows: int, counts: Mapping[str, int]
    ) -> None:
        """Record a successful prediction: its row count and the answers given."""
        key = (model, version)
        children = self._prediction_children.get(key)
        if children is None:
            children = self._prediction_children[key] = (self.rows.labels(model, version), {})
        children[0].observe(rows)
        by_answer = children[1]
        for answer, n in counts.items():
            if n:
                child = by_answer.get(answer)
                if child is None:
                    child = by_answer[answer] = self.predictions.labels(model, version, answer)
                child.inc(n)

    def observe_error(self, model: str, reason: str) -> None:
        """Count a refused or failed request."""
        self.errors.labels(model, reason).inc()

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type (aggregated over workers if needed)."""
        # Collectors read at scrape time, the same in both modes.
        scraped = CollectorRegistry()
        scraped.register(self.container)
        if self.rollouts is not None:
            scraped.register(self.rollouts)
        if self.multiprocess_dir:
            MultiProcessCollector(scraped, path=self.multiprocess_dir)
            return generate_latest(scraped), CONTENT_TYPE_LATEST
        assert self.registry is not None
        return generate_latest(self.registry) + generate_latest(scraped), CONTENT_TYPE_LATEST


class ContainerCollector(Collector):
    """CPU and memory of this replica's container, read from its own cgroup at scrape time.

    Why not cAdvisor: it needs the Docker socket or the host's /sys and /var/lib/docker
    mounted into a privileged container, which would undo the stack's "nothing privileged"
    default. Every container already sees its own cgroup (v1 or v2) read-only, and reading
    four small files per scrape (never per request) costs microseconds. The identity label
    comes from ``modelfleet_replica_info`` like every other per-replica series.
    """

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.root = root
        self.v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))

    def _read(self, *parts: str) -> str | None:
        try:
            with open(os.path.join(self.root, *parts)) as f:
                return f.read()
        except OSError:
            return None

    def _stat(self, *parts: str) -> dict[str, int]:
        text = self._read(*parts) or ""
        pairs = (line.split() for line in text.splitlines())
        return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}

    def _cpu_seconds(self) -> float | None:
        if self.v2:
            usec = self._stat("cpu.stat").get("usage_usec")
            return None if usec is None else usec / 1e6
        ns = self._read("cpuacct", "cpuacct.usage")
        return None if ns is None else int(ns) / 1e9

    def _memory(self) -> tuple[float | None, float | None]:
        """(working set, limit) in bytes; the limit is None when unlimited."""
        if self.v2:
            usage, limit = self._read("memory.current"), self._read("memory.max")
            inactive = self._stat("memory.stat").get("inactive_file", 0)
        else:
            usage = self._read("memory", "memory.usage_in_bytes")
            limit = self._read("memory", "memory.limit_in_bytes")
            inactive = self._stat("memory", "memory.stat").get("total_inactive_file", 0)
        if usage is None:
            return None, None
        # cgroup v1 reports "no limit" as a huge page-aligned number.
        lim = None if limit is None or limit.strip() == "max" else float(limit)
        if lim is not None and lim >= 2**60:
            lim = None
        return max(int(usage) - inactive, 0), lim

    def _cpu_limit(self) -> float | None:
        if self.v2:
            quota, _, period = (self._read("cpu.max") or "max").partition(" ")
        else:
            quota = (self._read("cpu", "cpu.cfs_quota_us") or "-1").strip()
            period = self._read("cpu", "cpu.cfs_period_us") or "0"
        if quota in ("max", "-1") or not period.strip():
            return None
        return int(quota) / int(period)

    def collect(self) -> Iterable[Metric]:
        """Yield the container metrics that this cgroup exposes (none off Linux)."""
        cpu = self._cpu_seconds()
        if cpu is not None:
            yield CounterMetricFamily(
                "modelfleet_container_cpu_seconds",
                "CPU time used by this replica's container (all processes).",
                value=cpu,
            )
        working_set, limit = self._memory()
        if working_set is not None:
            yield GaugeMetricFamily(
                "modelfleet_container_memory_working_set_bytes",
                "Memory of this replica's container, less reclaimable page cache.",
                value=working_set,
            )
        if limit is not None:
            yield GaugeMetricFamily(
                "modelfleet_container_memory_limit_bytes",
                "Memory limit of this replica's container.",
                value=limit,
            )
        cores = self._cpu_limit()
        if cores is not None:
            yield GaugeMetricFamily(
                "modelfleet_container_cpu_limit_cores",
                "CPU limit of this replica's container, in cores.",
                value=cores,
            )


def mark_process_dead(pid: int) -> None:
    """For gunicorn's ``child_exit``: drop a dead worker's live gauges (multiprocess only)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
