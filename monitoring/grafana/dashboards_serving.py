"""The dashboards of the models' serving: the fleet overview and the replicas."""

from __future__ import annotations

from panels import MODEL_VAR, REPLICA_JOIN, M, dashboard, red, row, stat, table, target, timeseries


def overview():
    panels = [
        row("Service level"),
        stat(
            "Replicas up",
            "modelfleet:replicas_up:count",
            description="Replicas Prometheus scraped successfully (modelfleet:replicas_up:count).",
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        stat(
            "Client requests/s",
            f"sum(model:modelfleet_requests:rate1m{{{M}}})",
            unit="reqps",
            description="All client requests (health probes excluded), 1m rate.",
        ),
        stat(
            "Server error ratio",
            # `>= 0` drops the NaN ratio (0/0) of a model idle for the last minute, which
            # would make the whole sum NaN.
            f"sum(model:modelfleet_requests:rate1m{{{M}}}"
            f" * (model:modelfleet_requests_5xx:ratio_rate1m{{{M}}} >= 0))"
            f" / sum(model:modelfleet_requests:rate1m{{{M}}})",
            unit="percentunit",
            thresholds=red(0.001),
            description="5xx answers / client requests over 1m. Red above the 0.1% error budget.",
        ),
        stat(
            "Availability objective",
            "modelfleet:slo_availability_objective",
            unit="percentunit",
            description="From monitoring/prometheus/rules/slo.yml.",
        ),
        row("Rate"),
        timeseries(
            "Requests/s by model",
            [target(f"model:modelfleet_requests:rate1m{{{M}}}", "{{model}}")],
            unit="reqps",
            description="Client requests per model (health probes excluded).",
        ),
        timeseries(
            "Requests/s by endpoint",
            [target(f"model_endpoint:modelfleet_requests:rate1m{{{M}}}", "{{model}} {{endpoint}}")],
            unit="reqps",
            description="Per model and endpoint, health probes included.",
        ),
        row("Errors"),
        timeseries(
            "Server error ratio (5xx)",
            [target(f"model:modelfleet_requests_5xx:ratio_rate1m{{{M}}}", "{{model}}")],
            unit="percentunit",
            description="Spends the availability error budget. "
            "Alert: ModelFleetHighErrorRatio (> 5% for 5m).",
        ),
        timeseries(
            "Client error ratio (4xx)",
            [target(f"model:modelfleet_requests_4xx:ratio_rate1m{{{M}}}", "{{model}}")],
            unit="percentunit",
            description="The caller's fault (bad input, unknown model); not part of the SLO.",
        ),
        timeseries(
            "Errors/s by reason",
            [target(f"model_reason:modelfleet_errors:rate1m{{{M}}} > 0", "{{model}} {{reason}}")],
            unit="reqps",
            description="modelfleet_errors_total by reason (refused or failed requests).",
        ),
        timeseries(
            "Error budget burn rate (1h)",
            [
                target(
                    f"model:modelfleet_requests_5xx:ratio_rate1h{{{M}}}"
                    " / on () group_left () (1 - modelfleet:slo_availability_objective)",
                    "{{model}} availability",
                ),
                target(
                    f"model:modelfleet_request_duration_slow:ratio_rate1h{{{M}}}"
                    " / on () group_left () (1 - modelfleet:slo_latency_objective)",
                    "{{model}} latency",
                    ref="B",
                ),
            ],
            description="1 = spending the budget exactly as fast as the objective allows. "
            "The fast-burn alerts fire above 14.4 (with the 5m window agreeing).",
        ),
        row("Duration"),
        timeseries(
            "Latency p50 / p95 / p99",
            [
                target(
                    f"model_quantile:modelfleet_request_duration_seconds:histogram_quantile_rate1m{{{M}}}",
                    "{{model}} p{{quantile}}",
                )
            ],
            unit="s",
            w=24,
            description="histogram_quantile over the buckets of all replicas, 1m rate. "
            "Alert: ModelFleetHighLatencyP99 (p99 over 5m > 0.5s for 10m).",
        ),
        timeseries(
            "Requests slower than the SLO threshold",
            [target(f"model:modelfleet_request_duration_slow:ratio_rate5m{{{M}}}", "{{model}}")],
            unit="percentunit",
            w=24,
            description="Share of requests above modelfleet:slo_latency_threshold_seconds "
            "(0.1s), 5m. The latency objective allows 1 - modelfleet:slo_latency_objective (1%).",
        ),
        row("Predictions"),
        timeseries(
            "Rows predicted/s",
            [target(f"model:modelfleet_prediction_rows:rate1m{{{M}}}", "{{model}}")],
            description="Sum of modelfleet_prediction_rows: rows, not requests.",
        ),
        timeseries(
            "Predictions/s by class",
            [target(f"model_class:modelfleet_predictions:rate1m{{{M}}}", "{{model}} {{class}}")],
            stack=True,
            description="A shift in the class mix can be data drift.",
        ),
        table(
            "Loaded models",
            f'max by (model, version, sha256) (modelfleet_model_info{{job="model", {M}}})',
            w=24,
            description="Model versions currently served (any replica).",
        ),
    ]
    return dashboard(
        "modelfleet-overview",
        "ModelFleet / Overview",
        "RED per model: request rate, errors, duration; SLO burn.",
        panels,
        [MODEL_VAR],
    )


def replicas():
    panels = [
        row("Fleet"),
        stat(
            "Replicas up",
            "modelfleet:replicas_up:count",
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        stat(
            "Replicas ready",
            f"sum(model:modelfleet_model_ready:sum{{{M}}})",
            description="Sum over models of the replicas reporting the model ready.",
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        stat("Requests in flight", 'sum(modelfleet_requests_in_flight{job="model"})'),
        stat(
            "Busy workers",
            'sum(modelfleet_busy_workers{job="model"}) / sum(modelfleet_workers{job="model"})',
            unit="percentunit",
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.8}],
            description="Workers with at least one request / live workers, whole fleet.",
        ),
        table(
            "Replicas",
            'modelfleet_replica_info{job="model"}',
            w=12,
            description="replica = container hostname (stable); "
            "instance = IP:port (reused by Docker).",
        ),
        table(
            "Model readiness by replica",
            f'modelfleet_model_ready{{job="model", {M}}} {REPLICA_JOIN}',
            w=12,
        ),
        row("Traffic"),
        timeseries(
            "Traffic share",
            [
                target(
                    "instance:modelfleet_requests:rate1m / on () group_left () "
                    "sum(instance:modelfleet_requests:rate1m)",
                    "{{replica}}",
                )
            ],
            unit="percentunit",
            stack=True,
            description="Share of client requests per replica. Uneven shares mean the load "
            "balancer's upstream list is stale (see runbook).",
        ),
        timeseries(
            "Requests/s by replica",
            [target("instance:modelfleet_requests:rate1m", "{{replica}}")],
            unit="reqps",
        ),
        timeseries(
            "Server error ratio by replica",
            [target("instance:modelfleet_requests_5xx:ratio_rate1m", "{{replica}}")],
            unit="percentunit",
        ),
        timeseries(
            "Latency p99 by replica",
            [
                target(
                    'instance_quantile:modelfleet_request_duration_seconds:histogram_quantile_rate1m{quantile="0.99"}',
                    "{{replica}}",
                )
            ],
            unit="s",
            description="All models together; one slow replica stands out here first.",
        ),
        timeseries(
            "Latency p50 by replica",
            [
                target(
                    'instance_quantile:modelfleet_request_duration_seconds:histogram_quantile_rate1m{quantile="0.5"}',
                    "{{replica}}",
                )
            ],
            unit="s",
        ),
        row("Saturation"),
        timeseries(
            "Requests in flight by replica",
            [target(f'modelfleet_requests_in_flight{{job="model"}} {REPLICA_JOIN}', "{{replica}}")],
        ),
        timeseries(
            "Busy workers by replica",
            [
                target(
                    '(modelfleet_busy_workers{job="model"} / modelfleet_workers{job="model"}) '
                    + REPLICA_JOIN,
                    "{{replica}}",
                )
            ],
            unit="percentunit",
            max_=1,
            description="1 = every worker busy: requests queue in gunicorn's backlog.",
        ),
        timeseries(
            "CPU by replica",
            [
                target(
                    'rate(modelfleet_container_cpu_seconds_total{job="model"}[1m]) ' + REPLICA_JOIN,
                    "{{replica}}",
                ),
                target(
                    'modelfleet_container_cpu_limit_cores{job="model"} ' + REPLICA_JOIN,
                    "{{replica}} limit",
                    ref="B",
                ),
            ],
            description="Cores used by each replica's container (1 = one core), read by the "
            "replica from its own cgroup, and its CPU limit.",
        ),
        timeseries(
            "Memory working set by replica",
            [
                target(
                    'modelfleet_container_memory_working_set_bytes{job="model"} ' + REPLICA_JOIN,
                    "{{replica}}",
                ),
                target(
                    'modelfleet_container_memory_limit_bytes{job="model"} ' + REPLICA_JOIN,
                    "{{replica}} limit",
                    ref="B",
                ),
            ],
            unit="bytes",
            description="Memory the kernel cannot reclaim (what the OOM killer looks at), "
            "and the container's limit.",
        ),
    ]
    return dashboard(
        "modelfleet-replicas",
        "ModelFleet / Replicas",
        "Per replica: traffic share, errors, latency, CPU, memory, worker saturation.",
        panels,
        [MODEL_VAR],
    )
