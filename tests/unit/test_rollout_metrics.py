"""model_server/rollout_metrics.py: ``modelfleet_rollouts_total`` from the rollout history.

Specification: every replica counts the history beside the model repository by model and
outcome at scrape time; every served model has both outcomes from 0; lines that are not a
finished rollout are skipped; a missing history is all zeros.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from model_server.repository import HISTORY_FILE
from model_server.rollout_metrics import RolloutHistoryCollector
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def scrape(collector: RolloutHistoryCollector) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.labels["model"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "modelfleet_rollouts_total"
    }


def line(model: str, outcome: str) -> str:
    return json.dumps({"model": model, "outcome": outcome, "from": "1", "to": "2"}) + "\n"


def test_without_a_history_every_model_counts_zero_of_each_outcome(tmp_path: Path) -> None:
    collector = RolloutHistoryCollector(tmp_path, ["churn"])
    assert scrape(collector) == {("churn", "FAILED"): 0, ("churn", "OK"): 0}


def test_the_history_is_counted_by_model_and_outcome_and_reread_when_it_grows(
    tmp_path: Path,
) -> None:
    history = tmp_path / HISTORY_FILE
    history.write_text(line("churn", "OK") + line("churn", "FAILED") + "not json\n[1]\n")
    collector = RolloutHistoryCollector(tmp_path, ["churn", "boston"])
    assert scrape(collector) == {
        ("boston", "FAILED"): 0,
        ("boston", "OK"): 0,
        ("churn", "FAILED"): 1,
        ("churn", "OK"): 1,
    }
    with history.open("a") as f:
        f.write(line("churn", "OK") + line("gone", "OK") + line("churn", "MAYBE"))
    counts = scrape(collector)
    assert counts[("churn", "OK")] == 2
    assert counts[("gone", "OK")] == 1  # a model removed since is still counted
    assert ("churn", "MAYBE") not in counts


def test_the_server_exports_the_history_of_its_repository(make_app: object) -> None:
    app: Flask = make_app()  # type: ignore[operator]
    text = app.test_client().get("/metrics").data.decode()
    assert 'modelfleet_rollouts_total{model="diabetes",outcome="OK"} ' in text
