#!/usr/bin/env python3
"""Generate the ModelFleet dashboards: Grafana's and the Prometheus console pages.

From the one panel list of each dashboard below it writes
- monitoring/grafana/dashboards/*.json, which Grafana provisions as they are, and
- monitoring/prometheus/consoles/*.html (and index.html), the same panels and queries served
  by Prometheus itself at /consoles/ (console_pages.py translates; no Grafana needed).
The files are committed; this script is how they are written. Edit the panel lists, then run:

    python3 monitoring/grafana/generate_dashboards.py          # rewrite the files
    python3 monitoring/grafana/generate_dashboards.py --check  # exit 1 if any is stale

tests/monitoring/test_dashboards.py runs the check, so a hand edit of a generated file fails CI.
Standard library only: it runs anywhere Python 3.9+ does.

Conventions (tests/monitoring/ relies on them):
- every dashboard has a fixed `uid` (the dashboard's address: links and bookmarks use it);
- the datasource is always referenced by uid (`prometheus`, provisioned in
  provisioning/datasources/prometheus.yml), never by name;
- the only template variable is `$model`, a regex (`model=~"$model"`) whose "All" value is
  `.*`: substituting `.*` turns any panel query into valid PromQL;
- queries prefer the recording rules of monitoring/prometheus/rules/ (cheap, and the same
  numbers the alerts see); raw metrics only where no rule exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import console_pages

MONITORING = Path(__file__).resolve().parents[1]
OUT_DIR = MONITORING / "grafana" / "dashboards"
CONSOLES_DIR = MONITORING / "prometheus" / "consoles"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Grafana 10's dashboard schema; older Grafanas migrate it on load.
SCHEMA_VERSION = 38
WIDTH = 24  # Grafana's grid is 24 units wide.

MODEL_VAR = {
    "name": "model",
    "label": "Model",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {"query": "label_values(modelfleet_model_info, model)", "refId": "model"},
    "definition": "label_values(modelfleet_model_info, model)",
    "refresh": 2,  # on time range change: models come and go with deployments
    "includeAll": True,
    "allValue": ".*",
    "multi": True,
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "sort": 1,
}

REPLICA_JOIN = '* on (instance) group_left (replica) modelfleet_replica_info{job="model"}'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
    if instant:
        t.update({"instant": True, "range": False, "format": "table"})
    else:
        t.update({"range": True})
    return t


def timeseries(title, targets, unit="short", description="", w=12, h=8, max_=None, stack=False):
    defaults = {
        "unit": unit,
        "min": 0,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_w": w,
        "_h": h,
    }


def stat(title, expr, unit="short", description="", thresholds=None, w=6, h=4, legend=""):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
        "_w": w,
        "_h": h,
    }


def table(title, expr, description="", w=12, h=8):
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "transformations": [
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}},
            }
        ],
        "_w": w,
        "_h": h,
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": WIDTH, "_h": 1}


def red(value):
    """Thresholds: green below `value`, red from it."""
    return [{"color": "green", "value": None}, {"color": "red", "value": value}]


def layout(panels):
    """Assign ids and grid positions left to right, top to bottom."""
    x = y = row_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > WIDTH:
            x, y, row_h = 0, y + row_h, 0
        p = {"id": pid, "gridPos": {"x": x, "y": y, "w": w, "h": h}, **p}
        out.append(p)
        x += w
        row_h = max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return out


def dashboard(uid, title, description, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["modelfleet"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [
            {
                "type": "dashboards",
                "tags": ["modelfleet"],
                "asDropdown": True,
                "title": "ModelFleet",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": list(variables)},
        "panels": layout(list(panels)),
    }


M = 'model=~"$model"'


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


DASHBOARDS = {
    "overview.json": overview,
    "replicas.json": replicas,
    "loadbalancer.json": loadbalancer,
    "prometheus.json": prometheus,
}


def render() -> dict[Path, str]:
    """Path -> text of every generated file: Grafana JSON, console pages, console index."""
    out: dict[Path, str] = {}
    pages: list[tuple[str, dict]] = []
    for name, build in DASHBOARDS.items():
        out[OUT_DIR / name] = json.dumps(build(), indent=2, sort_keys=False) + "\n"
        # The pages are read back from the JSON exactly as Grafana gets it.
        pages.append((Path(name).with_suffix(".html").name, json.loads(out[OUT_DIR / name])))
    for filename, dash in pages:
        out[CONSOLES_DIR / filename] = console_pages.page(dash, filename, pages)
    out[CONSOLES_DIR / "index.html"] = console_pages.index(pages)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check report the stale ones (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed generated file is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(MONITORING)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale files (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
