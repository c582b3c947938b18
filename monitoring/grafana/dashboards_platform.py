"""The dashboards of the platform around the replicas: the load balancer and Prometheus."""

from __future__ import annotations

from panels import dashboard, red, row, stat, table, target, timeseries


def loadbalancer():
    panels = [
        row("Load balancer"),
        stat(
            "nginx up",
            'min(nginx_up{job="nginx"})',
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        stat("Requests/s at nginx", "sum(job:nginx_http_requests:rate1m)", unit="reqps"),
        stat(
            "Unanswered requests/s",
            "modelfleet:lb_unanswered_requests:rate5m",
            unit="reqps",
            thresholds=red(1),
            description="Requests nginx accepted that no replica served (5m). "
            "Alert: ModelFleetLoadBalancerUpstreamErrors.",
        ),
        stat(
            "Upstream replicas ready",
            "sum(model:modelfleet_model_ready:sum)",
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
        ),
        timeseries(
            "Requests/s: nginx vs replicas",
            [
                target("sum(job:nginx_http_requests:rate1m)", "accepted by nginx"),
                target("sum(model:modelfleet_requests:rate1m)", "served by replicas", ref="B"),
                target("modelfleet:lb_unanswered_requests:rate5m", "unanswered (5m)", ref="C"),
            ],
            unit="reqps",
            w=24,
            description="stub_status has no status codes: the gap between the two curves is what "
            "nginx answered itself (502/503/504, 413, blocked paths).",
        ),
        row("Connections"),
        timeseries(
            "Connections",
            [
                target('sum(nginx_connections_active{job="nginx"})', "active"),
                target('sum(nginx_connections_reading{job="nginx"})', "reading", ref="B"),
                target('sum(nginx_connections_writing{job="nginx"})', "writing", ref="C"),
                target(
                    'sum(nginx_connections_waiting{job="nginx"})', "waiting (keep-alive)", ref="D"
                ),
            ],
        ),
        timeseries(
            "Connections accepted / handled per second",
            [
                target('sum(rate(nginx_connections_accepted{job="nginx"}[1m]))', "accepted"),
                target('sum(rate(nginx_connections_handled{job="nginx"}[1m]))', "handled", ref="B"),
            ],
            unit="cps",
            description="accepted > handled means nginx dropped connections "
            "(worker_connections limit).",
        ),
        row("Upstreams (as seen by the replicas)"),
        timeseries(
            "Replicas up and ready",
            [
                target("modelfleet:replicas_up:count", "up"),
                target("sum(model:modelfleet_model_ready:sum)", "ready (sum over models)", ref="B"),
            ],
        ),
        timeseries(
            "4xx / 5xx per second by status",
            [
                target(
                    "sum by (status) (rate(modelfleet_requests_total"
                    '{job="model", endpoint!="health", status=~"[45].."}[1m]))',
                    "{{status}}",
                )
            ],
            unit="reqps",
            stack=True,
            description="Errors the replicas answered. "
            "5xx spend the error budget; 4xx are client errors.",
        ),
    ]
    return dashboard(
        "modelfleet-loadbalancer",
        "ModelFleet / Load balancer",
        "nginx (stub_status exporter) and the upstream replicas behind it.",
        panels,
    )


def prometheus():
    panels = [
        row("Targets"),
        stat("Monitoring targets down", "count(up == 0) or vector(0)", thresholds=red(1), w=8),
        stat(
            "Config reload OK",
            'min(prometheus_config_last_reload_successful{job="prometheus"})',
            thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
            w=8,
        ),
        stat(
            "Firing alerts",
            'count(ALERTS{alertstate="firing"}) or vector(0)',
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
            w=8,
        ),
        timeseries(
            "Targets up by job",
            [target("job:up:sum", "{{job}}")],
            description="The model job follows `docker compose --scale` "
            "through DNS service discovery.",
        ),
        table("Targets", "up", description="Every target and its last scrape result (1 = up)."),
        timeseries(
            "Scrape duration",
            [target("scrape_duration_seconds", "{{job}} {{instance}}")],
            unit="s",
            description="Must stay well under scrape_timeout (4s).",
        ),
        timeseries("Samples scraped", [target("scrape_samples_scraped", "{{job}} {{instance}}")]),
        timeseries(
            "Rejected samples/s",
            [
                target(
                    'sum(rate(prometheus_target_scrapes_sample_out_of_order_total{job="prometheus"}[5m]))',
                    "out of order",
                ),
                target(
                    'sum(rate(prometheus_target_scrapes_sample_duplicate_timestamp_total{job="prometheus"}[5m]))',
                    "duplicate timestamp",
                    ref="B",
                ),
                target(
                    'sum(rate(prometheus_target_scrapes_exceeded_sample_limit_total{job="prometheus"}[5m]))',
                    "over sample limit",
                    ref="C",
                ),
            ],
            w=24,
        ),
        row("Rules"),
        timeseries(
            "Rule evaluation failures/s",
            [
                target(
                    "sum by (rule_group) "
                    '(rate(prometheus_rule_evaluation_failures_total{job="prometheus"}[5m]))',
                    "{{rule_group}}",
                )
            ],
            description="Alert: ModelFleetPrometheusRuleEvaluationFailures.",
        ),
        timeseries(
            "Rule group evaluation time",
            [
                target(
                    'prometheus_rule_group_last_duration_seconds{job="prometheus"}',
                    "{{rule_group}}",
                )
            ],
            unit="s",
            description="Must stay well under the evaluation interval.",
        ),
        row("Storage (TSDB)"),
        timeseries(
            "Head series", [target('prometheus_tsdb_head_series{job="prometheus"}', "series")]
        ),
        timeseries(
            "Samples appended/s",
            [
                target(
                    'rate(prometheus_tsdb_head_samples_appended_total{job="prometheus"}[1m])',
                    "samples",
                )
            ],
        ),
        timeseries(
            "Storage used by persisted blocks",
            [target('prometheus_tsdb_storage_blocks_bytes{job="prometheus"}', "blocks")],
            unit="bytes",
            description="The head block and WAL (about the last 2-3 hours) come on top.",
        ),
        timeseries(
            "TSDB failures/s",
            [
                target(
                    'rate(prometheus_tsdb_compactions_failed_total{job="prometheus"}[5m])',
                    "compactions",
                ),
                target(
                    'rate(prometheus_tsdb_head_truncations_failed_total{job="prometheus"}[5m])',
                    "head truncations",
                    ref="B",
                ),
                target(
                    'rate(prometheus_tsdb_wal_corruptions_total{job="prometheus"}[5m])',
                    "WAL corruptions",
                    ref="C",
                ),
                target(
                    'rate(prometheus_tsdb_wal_writes_failed_total{job="prometheus"}[5m])',
                    "WAL write failures",
                    ref="D",
                ),
            ],
        ),
    ]
    return dashboard(
        "modelfleet-prometheus",
        "ModelFleet / Prometheus",
        "The monitoring itself: targets, scrapes, rule evaluation, TSDB.",
        panels,
    )
