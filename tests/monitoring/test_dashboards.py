"""Structure of the provisioned Grafana dashboards (monitoring/grafana/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.monitoring import queries

GRAFANA = queries.MONITORING / "grafana"
EXPECTED_UIDS = {
    "modelfleet-overview",
    "modelfleet-replicas",
    "modelfleet-loadbalancer",
    "modelfleet-prometheus",
}
DATASOURCE_UID = "prometheus"
# Panels that carry no query by design.
QUERYLESS_PANEL_TYPES = {"row", "text"}

DASHBOARDS = queries.dashboard_files()


def _walk(node, key):
    """Every value stored under `key` anywhere in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


@pytest.fixture(params=DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def dashboard(request) -> dict:
    return json.loads(Path(request.param).read_text())


def test_committed_json_matches_the_generator():
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "generate_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_dashboard_uids_are_the_fixed_ones_and_unique():
    uids = [d["uid"] for d in queries.load_dashboards()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    titles = [d["title"] for d in queries.load_dashboards()]
    assert len(set(titles)) == len(titles)


def test_datasource_is_referenced_by_uid_everywhere(dashboard):
    refs = list(_walk(dashboard, "datasource"))
    assert refs, "no datasource reference at all"
    for ref in refs:
        assert isinstance(ref, dict), f"datasource referenced by name: {ref!r}"
        assert ref == {"type": "prometheus", "uid": DATASOURCE_UID}


def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in queries.iter_panels(dashboard)]
    assert len(ids) == len(set(ids)), sorted(ids)


def test_every_panel_has_a_query(dashboard):
    for panel in queries.iter_panels(dashboard):
        if panel["type"] in QUERYLESS_PANEL_TYPES:
            continue
        exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
        assert exprs and all(exprs), f"panel {panel['title']!r} has a target without expr"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {panel['title']!r}: duplicate refId"


def test_panels_fit_the_grid_without_overlapping(dashboard):
    cells = set()
    for panel in queries.iter_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


def test_template_variables_follow_the_regex_convention(dashboard):
    """Variables are regexes matched with =~ whose All value is .* (see queries.py)."""
    variables = dashboard["templating"]["list"]
    names = {v["name"] for v in variables}
    for var in variables:
        assert var["type"] == "query"
        assert var.get("includeAll") and var.get("allValue") == ".*", var["name"]
    for panel in queries.iter_panels(dashboard):
        for tgt in panel.get("targets", []):
            expr = tgt.get("expr", "")
            used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", expr))
            assert used <= names | set(queries.VARIABLE_VALUES), (panel["title"], used)
            for name in used & names:
                # `label="$model"` would break on "All" and on multi-selection.
                assert re.search(rf'=~"\${name}"', expr), (panel["title"], expr)


def test_substituted_queries_have_no_variables_left():
    found = queries.dashboard_queries()
    assert len(found) > 40
    for uid, title, expr in found:
        assert not re.search(r"\$\{?[A-Za-z_]", expr), (uid, title, expr)
        assert expr.count("(") == expr.count(")"), (uid, title, expr)
        assert expr.count("{") == expr.count("}"), (uid, title, expr)


def test_dashboards_use_the_metrics_prefixes_we_scrape():
    for name in queries.metric_names_used():
        queries.exporter_job(name)  # raises for a metric no scrape job exposes


def test_datasource_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"


def test_dashboard_provisioning():
    doc = yaml.safe_load((GRAFANA / "provisioning/dashboards/modelfleet.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"].startswith("/")


def test_no_credentials_are_committed():
    for path in GRAFANA.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".yaml", ".json", ".ini"}:
            text = path.read_text().lower()
            assert "password" not in text and "secret" not in text, path
