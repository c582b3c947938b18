"""Structure of the Grafana dashboards (monitoring/grafana/) and of their console pages.

The console pages (monitoring/prometheus/consoles/) are generated from the same panel
definitions: every Grafana panel must have its console panel, with the same queries.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
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
    "modelfleet-rollouts",
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


# -- the console pages Prometheus serves (monitoring/prometheus/consoles/) -----------------------

PROMETHEUS_DIR = queries.MONITORING / "prometheus"
CONSOLES = PROMETHEUS_DIR / "consoles"
CONSOLE_LIBRARY = PROMETHEUS_DIR / "console_libraries" / "modelfleet.lib"


class _ConsolePage(HTMLParser):
    """Panels (title, type, [(expr, legend)]), variables and links of a console page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.panels: list[dict] = []
        self.variables: dict[str, str] = {}
        self.links: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-panel" in a:
            self.panels.append({"title": a["data-title"], "type": a["data-panel"], "targets": []})
        elif tag == "code" and "data-expr" in a:
            self.panels[-1]["targets"].append((a["data-expr"], a["data-legend"]))
        elif "data-var" in a:
            self.variables[a["data-var"]] = a["data-all"]
        elif tag == "a" and "mf-dashboard" in (a.get("class") or ""):
            self.links.append(a["href"])


def _console_page(name: str) -> _ConsolePage:
    return _ConsolePage((CONSOLES / name).read_text())


def _console_legend(grafana_legend: str) -> str:
    """What a Grafana legend must read as in PromConsole's syntax."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", r"[[\1]]", grafana_legend)


def test_every_grafana_panel_has_its_console_counterpart_with_the_same_query(dashboard):
    page = _console_page(f"{dashboard['uid'].removeprefix('modelfleet-')}.html")
    expected = [
        {
            "title": p["title"],
            "type": p["type"],
            "targets": [
                (t["expr"], _console_legend(t.get("legendFormat", ""))) for t in p["targets"]
            ],
        }
        for p in queries.iter_panels(dashboard)
        if p["type"] not in QUERYLESS_PANEL_TYPES
    ]
    assert page.panels == expected


def test_console_pages_take_the_grafana_variables_as_url_parameters(dashboard):
    page = _console_page(f"{dashboard['uid'].removeprefix('modelfleet-')}.html")
    grafana = {v["name"]: v["allValue"] for v in dashboard["templating"]["list"]}
    assert page.variables == grafana


def test_console_index_links_every_dashboard_page():
    pages = sorted(p.name for p in CONSOLES.glob("*.html") if p.name != "index.html")
    assert pages == sorted(f"{uid.removeprefix('modelfleet-')}.html" for uid in EXPECTED_UIDS)
    assert sorted(_console_page("index.html").links) == pages


def test_console_pages_use_only_templates_the_library_defines():
    defined = set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', CONSOLE_LIBRARY.read_text()))
    for path in CONSOLES.glob("*.html"):
        used = set(re.findall(r'\{\{-?\s*template\s+"([^"]+)"', path.read_text()))
        assert used and used <= defined, (path.name, used - defined)


def test_prometheus_serves_the_console_pages_from_the_mounted_directory():
    doc = yaml.safe_load((queries.REPO / "compose.yaml").read_text())
    prometheus = doc["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus"] == "./monitoring/prometheus"
    assert "--web.console.templates=/etc/prometheus/consoles" in prometheus["command"]
    assert "--web.console.libraries=/etc/prometheus/console_libraries" in prometheus["command"]


def test_panel_queries_use_only_the_variables_console_pages_substitute():
    """The console pages know `$model` only (modelfleet.lib refuses any other variable, as the
    browser test saw for `$__rate_interval`): a query must not depend on Grafana's own."""
    for dash in queries.load_dashboards():
        for panel in queries.iter_panels(dash):
            for tgt in panel.get("targets", []):
                used = {
                    a or b for a, b in re.findall(r"\$\{(\w+)[^}]*\}|\$([A-Za-z_]\w*)", tgt["expr"])
                }
                assert used <= {"model"}, (dash["uid"], panel["title"], used)
