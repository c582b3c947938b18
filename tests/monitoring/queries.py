"""Helpers that read the monitoring-as-code: every PromQL query and every metric name it uses.

Importable by any test tier (no pytest dependency; PyYAML for the rule files):

- ``dashboard_queries()``: ``[(dashboard uid, panel title, expr)]`` with Grafana template
  variables substituted, ready to send to a live Prometheus;
- ``rule_queries()``: ``[(rule file, rule name, expr)]`` for every recording and alerting rule;
- ``metric_names_used()``: the metric names the rules and dashboards read (recording rules
  defined in monitoring/prometheus/rules/ excluded, since they are produced, not scraped);
- ``exporter_job(name)``: which scrape job is expected to expose a metric name (``None`` for
  series Prometheus writes itself, such as ``up``);
- ``documented_metric_names()``: the metric names tabulated in the main README.md.

The PromQL "parser" is deliberately small: it strips strings, label matchers, ranges and
grouping clauses, then keeps identifiers that are not functions or keywords. It is exact for
the style used in this repository (see the docstring of ``promql_metric_names``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES_DIR = MONITORING / "prometheus" / "rules"
PROMTOOL_TESTS_DIR = MONITORING / "prometheus" / "tests"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
RUNBOOK = MONITORING / "runbook.md"
README = REPO / "README.md"

#: What each Grafana variable becomes when a query leaves Grafana. Every dashboard variable is
#: a regex used as `label=~"$var"` whose "All" value is `.*`; Grafana's built-in intervals get
#: values that are valid at the 5s scrape interval.
VARIABLE_VALUES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}
DEFAULT_VARIABLE_VALUE = ".*"

#: Series Prometheus writes itself: present in Prometheus, on no target's /metrics page.
SYNTHETIC_METRICS = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
#: Written by the rule manager only while an alert is pending or firing: legitimately absent
#: on a healthy stack, so they are not reported by ``metric_names_used``.
ALERT_METRICS = frozenset({"ALERTS", "ALERTS_FOR_STATE"})

#: Metric name prefix -> the scrape job (prometheus.yml) that exposes it.
JOB_BY_PREFIX = {
    "modelfleet_upstream_": "upstream-sync",
    "modelfleet_": "model",
    "nginx_": "nginx",
    "prometheus_": "prometheus",
}

_FUNCTIONS_AND_KEYWORDS = frozenset(
    {
        # aggregation operators
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile",
        # binary/set operators and modifiers
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
        "bool", "offset", "atan2",
        # literals
        "inf", "nan",
    }
)  # fmt: skip

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
# `$1` (a label_replace group reference) is not a variable: names start with a letter or `_`.
_GRAFANA_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def substitute_variables(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana's `$var` and `${var}` by the values a test should use."""
    table = {**VARIABLE_VALUES, **(values or {})}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return table.get(name, DEFAULT_VARIABLE_VALUE)

    return _GRAFANA_VAR.sub(repl, expr)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names (and recording rule names) a PromQL expression selects.

    Removes string literals, label matcher blocks, range/subquery brackets and grouping
    clauses (`by (...)`, `on (...)`, `group_left (...)`), then keeps every identifier that is
    not followed by `(` (a function or an aggregation) and is not an operator keyword.
    Identifiers glued to a digit (`1e3`, `5m`) are skipped. `__name__` matchers are not
    supported (this repository does not use them).
    """
    text = _STRING.sub('""', expr)
    while True:  # innermost first: ranges may contain nested subquery brackets
        stripped = _RANGE.sub("", _MATCHERS.sub("", text))
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in _FUNCTIONS_AND_KEYWORDS:
            continue
        names.add(ident)
    return names


# -- rules ---------------------------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def iter_rules() -> Iterator[tuple[Path, str, dict]]:
    """(file, group name, rule dict) for every rule."""
    for path in rule_files():
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                yield path, group["name"], rule


def rule_queries() -> list[tuple[str, str, str]]:
    """(rule file name, record or alert name, expr) for every rule."""
    return [
        (path.name, rule.get("record") or rule["alert"], rule["expr"])
        for path, _, rule in iter_rules()
    ]


#: Rule groups whose series exist only while two versions of a model answer (a rollout
#: baking); tests/stack/test_stack_rollout_gates.py checks them on such live traffic.
TWO_VERSION_GROUPS = frozenset({"modelfleet.rollout.gates"})


def recording_rule_names(groups: Iterable[str] | None = None) -> set[str]:
    """The recorded series' names: of every rule, or of the rules in ``groups``."""
    return {
        rule["record"]
        for _, group, rule in iter_rules()
        if "record" in rule and (groups is None or group in groups)
    }


def one_version_recording_rule_names() -> set[str]:
    """Those of every group but TWO_VERSION_GROUPS: the series any loaded stack has."""
    return recording_rule_names() - recording_rule_names(TWO_VERSION_GROUPS)


def alerting_rules() -> list[dict]:
    return [rule for _, _, rule in iter_rules() if "alert" in rule]


# -- dashboards ----------------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboards() -> list[dict]:
    return [json.loads(p.read_text()) for p in dashboard_files()]


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including the panels of collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def reads_two_version_series(expr: str) -> bool:
    """Whether ``expr`` reads a series of TWO_VERSION_GROUPS: it has data only while two
    versions of a model answer (during a rollout's bake)."""
    return bool(promql_metric_names(expr) & _two_version_series())


@functools.cache
def _two_version_series() -> frozenset[str]:
    return frozenset(recording_rule_names(TWO_VERSION_GROUPS))


def dashboard_queries(
    values: dict[str, str] | None = None, two_versions: bool | None = None
) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) for every panel target, variables substituted;
    with ``two_versions``, only the targets that do (True) or do not (False) read series that
    exist while two versions of a model answer."""
    out = []
    for dash in load_dashboards():
        for panel in iter_panels(dash):
            for tgt in panel.get("targets", []):
                expr = tgt.get("expr")
                if expr and two_versions in (None, reads_two_version_series(expr)):
                    out.append((dash["uid"], panel["title"], substitute_variables(expr, values)))
    return out


def two_version_panels() -> dict[str, set[str]]:
    """Dashboard file stem -> the titles of its panels whose every target reads series that
    exist only while two versions of a model answer: without a rollout they have no data."""
    out: dict[str, set[str]] = {}
    for path in dashboard_files():
        dash = json.loads(path.read_text())
        out[path.stem] = {
            panel["title"]
            for panel in iter_panels(dash)
            if (exprs := [t["expr"] for t in panel.get("targets", []) if t.get("expr")])
            and all(reads_two_version_series(e) for e in exprs)
        }
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, query) for every query variable."""
    out = []
    for dash in load_dashboards():
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                q = var["query"]
                out.append((dash["uid"], var["name"], q["query"] if isinstance(q, dict) else q))
    return out


# -- metric names --------------------------------------------------------------------------


def metric_names_used() -> set[str]:
    """Metric names read by the rules and dashboards that a live Prometheus must have.

    Recording rules defined in monitoring/prometheus/rules/ are excluded (the rules produce
    them) and so are ALERTS/ALERTS_FOR_STATE (absent while nothing is pending). Histogram
    series keep their suffix (`..._bucket`), as they appear in Prometheus. The synthetic
    series in ``SYNTHETIC_METRICS`` (`up`, `scrape_duration_seconds`, ...) are included: they
    exist in Prometheus, though on no target's /metrics page (see ``exporter_job``).
    """
    names: set[str] = set()
    for _, _, expr in rule_queries():
        names |= promql_metric_names(expr)
    for _, _, expr in dashboard_queries():
        names |= promql_metric_names(expr)
    for _, _, query in variable_queries():
        names |= set(_LABEL_VALUES.findall(query)) or promql_metric_names(query)
    return names - recording_rule_names() - ALERT_METRICS


def exporter_job(name: str) -> str | None:
    """The scrape job expected to expose `name`, or None for Prometheus' synthetic series."""
    if name in SYNTHETIC_METRICS:
        return None
    for prefix, job in JOB_BY_PREFIX.items():
        if name.startswith(prefix):
            return job
    raise ValueError(f"no scrape job known for metric {name!r}: extend JOB_BY_PREFIX")


def base_metric_name(name: str) -> str:
    """`x_bucket`/`x_sum`/`x_count` -> `x` for the histograms documented in the README."""
    documented = documented_metric_names()
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in documented:
            return name[: -len(suffix)]
    return name


def documented_metric_names() -> set[str]:
    """Names in the first column of README.md's metric tables (in backticks)."""
    names = set()
    in_metrics = False
    for line in README.read_text().splitlines():
        if line.startswith(("## ", "### ")):
            in_metrics = line.lower().startswith("### metrics")
        elif in_metrics and line.startswith("| `"):
            names.add(line.split("`")[1])
    return names
