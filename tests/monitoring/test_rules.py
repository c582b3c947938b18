"""Prometheus rules against the monitoring-mixins style guide, the runbook and the README.

`promtool test rules` itself runs in test_promtool_unit_tests when promtool is installed
(Debian package `prometheus`); the stack's Prometheus image runs the same tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.monitoring import queries

RUNBOOK_BASE = "https://github.com/modelfleet/modelfleet/blob/main/monitoring/runbook.md"
SEVERITIES = {"critical", "warning", "info"}
ALERTS = queries.alerting_rules()
ALERT_NAMES = sorted({a["alert"] for a in ALERTS})


def _promtool_tests() -> list[dict]:
    tests = []
    for path in sorted(queries.PROMTOOL_TESTS_DIR.glob("*.yml")):
        tests.extend(yaml.safe_load(path.read_text())["tests"])
    return tests


def _runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings."""
    anchors = set()
    for line in queries.RUNBOOK.read_text().splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_follows_the_mixin_style_guide(rule):
    assert re.fullmatch(r"ModelFleet[A-Z][A-Za-z0-9]+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    assert "for" in rule, "every alert has a considered `for`"
    ann = rule["annotations"]
    assert set(ann) == {"summary", "description", "runbook_url"}
    assert "{{" not in ann["summary"] and ann["summary"].endswith(".")
    assert "$labels" in ann["description"] or "$value" in ann["description"]
    assert ann["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"


def test_every_for_has_a_comment_saying_why():
    for path in queries.rule_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s+for:", line):
                assert lines[i - 1].strip().startswith("#"), (
                    f"{path.name}:{i + 1}: `for` without why"
                )


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_has_a_runbook_section(name):
    assert name.lower() in _runbook_anchors()


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_has_firing_and_quiet_promtool_cases(name):
    cases = [
        c for t in _promtool_tests() for c in t.get("alert_rule_test", []) if c["alertname"] == name
    ]
    assert any(c.get("exp_alerts") for c in cases), f"{name}: no case where it fires"
    assert any(not c.get("exp_alerts") for c in cases), f"{name}: no case where it stays quiet"


def test_every_recording_rule_is_tested():
    """Directly in a promql_expr_test, or through an alert or rule that reads it."""
    tested_exprs = [c["expr"] for t in _promtool_tests() for c in t.get("promql_expr_test", [])]
    covered = set()
    for expr in tested_exprs + [a["expr"] for a in ALERTS]:
        covered |= queries.promql_metric_names(expr)
    records = {r["record"]: r["expr"] for _, _, r in queries.iter_rules() if "record" in r}
    changed = True
    while changed:  # a covered rule covers the rules it reads
        changed = False
        for name in list(covered & set(records)):
            new = queries.promql_metric_names(records[name]) - covered
            if new:
                covered |= new
                changed = True
    assert set(records) - covered == set()


def test_latency_threshold_label_matches_its_value():
    (rule,) = [
        r
        for _, _, r in queries.iter_rules()
        if r.get("record") == "modelfleet:slo_latency_threshold_seconds"
    ]
    value = float(re.fullmatch(r"vector\(([0-9.]+)\)", rule["expr"].strip()).group(1))
    assert float(rule["labels"]["le"]) == value


def test_rules_read_only_documented_metrics():
    documented = queries.documented_metric_names()
    used = {queries.base_metric_name(n) for n in queries.metric_names_used()}
    assert used - documented - queries.SYNTHETIC_METRICS == set()


def test_readme_tables_every_alert():
    readme = queries.README.read_text()
    for name in ALERT_NAMES:
        assert f"`{name}`" in readme, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_and_unit_tests():
    rules = [str(p) for p in queries.rule_files()]
    check = subprocess.run(["promtool", "check", "rules", *rules], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = [str(p) for p in sorted(queries.PROMTOOL_TESTS_DIR.glob("*.yml"))]
    run = subprocess.run(["promtool", "test", "rules", *tests], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
