"""The metric contract: names, labels, exact counts, and multiprocess aggregation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from model_server.metrics import Metrics, mark_process_dead
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families
from unit_helpers import sample

QUERY = "/predict_data?pregnant=1&glucose=3&pressure=1"
#: Every metric the monitoring rules and dashboards use (the contract; never rename).
CONTRACT = {
    "modelfleet_requests_total",
    "modelfleet_request_duration_seconds",
    "modelfleet_prediction_rows",
    "modelfleet_predictions_total",
    "modelfleet_requests_in_flight",
    "modelfleet_model_info",
    "modelfleet_model_ready",
    "modelfleet_replica_info",
    "modelfleet_errors_total",
    "modelfleet_busy_workers",
    "modelfleet_workers",
}

# The seed models' label sets: each is served in version 1.0.0.
DIABETES = {"model": "diabetes", "version": "1.0.0"}
BOSTON = {"model": "boston", "version": "1.0.0"}


@pytest.fixture
def fresh(make_app: Callable[..., Flask]) -> Flask:
    """An app with its own, untouched metrics."""
    return make_app()


def scraped_names(app: Flask) -> set[str]:
    text = app.test_client().get("/metrics").data.decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {s.name for s in family.samples}
    return names


def test_every_contract_metric_is_exposed(fresh: Flask) -> None:
    fresh.test_client().get(QUERY)
    names = scraped_names(fresh)
    for metric in CONTRACT:
        assert metric in names or f"{metric}_bucket" in names, metric


def test_n_requests_move_the_counters_by_exactly_n(fresh: Flask) -> None:
    client = fresh.test_client()
    labels = {"model": "diabetes", "version": "1.0.0", "endpoint": "plumber", "status": "200"}
    assert sample(fresh, "modelfleet_requests_total", labels) == 0
    for _ in range(5):
        assert client.get(QUERY).status_code == 200
    assert sample(fresh, "modelfleet_requests_total", labels) == 5
    assert (
        sample(
            fresh,
            "modelfleet_predictions_total",
            {**DIABETES, "class": "no"},
        )
        == 5
    )
    assert (
        sample(
            fresh,
            "modelfleet_predictions_total",
            {**DIABETES, "class": "yes"},
        )
        == 0
    )
    duration = {"model": "diabetes", "version": "1.0.0", "endpoint": "plumber"}
    assert sample(fresh, "modelfleet_request_duration_seconds_count", duration) == 5
    assert sample(fresh, "modelfleet_prediction_rows_count", DIABETES) == 5
    assert sample(fresh, "modelfleet_prediction_rows_sum", DIABETES) == 5
    assert sample(fresh, "modelfleet_requests_in_flight") == 0
    assert sample(fresh, "modelfleet_busy_workers") == 0


def test_batch_rows_and_regression_values_are_counted(fresh: Flask) -> None:
    client = fresh.test_client()
    client.post("/models/diabetes/predict", json=[[1, 3, 1], [8, 190, 80], [1, 3, 1]])
    assert sample(fresh, "modelfleet_prediction_rows_sum", DIABETES) == 3
    assert (
        sample(
            fresh,
            "modelfleet_predictions_total",
            {**DIABETES, "class": "no"},
        )
        == 2
    )
    assert (
        sample(
            fresh,
            "modelfleet_predictions_total",
            {**DIABETES, "class": "yes"},
        )
        == 1
    )
    client.post("/invocations", data="0,0,0,0,0.5,6,50,4,1,300\n" * 4, content_type="text/csv",
                headers={"X-Amzn-SageMaker-Target-Model": "boston"})  # fmt: skip
    # A regressor's rows by quartile bin of its reference predictions (19.4, 22.8, 26.6):
    # 21.5 is in the second.
    counted = {q: sample(fresh, "modelfleet_predictions_total", {**BOSTON, "class": q})
               for q in ("q1", "q2", "q3", "q4")}  # fmt: skip
    assert counted == {"q1": 0, "q2": 4, "q3": 0, "q4": 0}


def test_errors_are_counted_by_reason_with_bounded_labels(fresh: Flask) -> None:
    client = fresh.test_client()
    client.get("/predict_data?pregnant=1&glucose=3")
    client.get("/models/made-up-name/predict_data?x=1")
    client.get("/no/such/route")
    client.delete("/healthz")
    missing = {"model": "diabetes", "reason": "missing_feature"}
    assert sample(fresh, "modelfleet_errors_total", missing) == 1
    assert (
        sample(fresh, "modelfleet_errors_total", {"model": "none", "reason": "unknown_model"}) == 1
    )
    assert sample(fresh, "modelfleet_errors_total", {"model": "none", "reason": "not_found"}) == 1
    not_allowed = {"model": "none", "reason": "method_not_allowed"}
    assert sample(fresh, "modelfleet_errors_total", not_allowed) == 1
    unknown = {"model": "none", "version": "none", "endpoint": "plumber", "status": "404"}
    assert sample(fresh, "modelfleet_requests_total", unknown) == 1
    other = {"model": "none", "version": "none", "endpoint": "other", "status": "404"}
    assert sample(fresh, "modelfleet_requests_total", other) == 1
    text = client.get("/metrics").data.decode()
    assert "made-up-name" not in text


def test_scrapes_are_not_counted(fresh: Flask) -> None:
    fresh.test_client().get("/metrics")
    text = fresh.test_client().get("/metrics").data.decode()
    assert 'endpoint="metrics"' not in text


def test_info_gauges(fresh: Flask) -> None:
    assert sample(fresh, "modelfleet_replica_info", {"replica": "replica-test", "release": ""}) == 1
    manifest = fresh.test_client().get("/models/diabetes").get_json()
    info = {
        "model": "diabetes",
        "version": "1.0.0",
        "sha256": manifest["artifact"]["sha256"],
        "current": "true",
    }
    assert sample(fresh, "modelfleet_model_info", info) == 1
    for model in ("boston", "diabetes", "diabetes-gbt"):
        assert sample(fresh, "modelfleet_model_ready", {"model": model}) == 1


def test_label_values_are_pre_initialised(fresh: Flask) -> None:
    text = fresh.test_client().get("/metrics").data.decode()
    assert (
        'modelfleet_requests_total{endpoint="infer",model="boston",status="200",version="1.0.0"}'
        " 0.0" in text
    )
    assert 'modelfleet_errors_total{model="diabetes-gbt",reason="out_of_range"} 0.0' in text
    assert (
        'modelfleet_predictions_total{class="yes",model="diabetes-gbt",version="1.0.0"} 0.0' in text
    )


def test_multiprocess_mode_aggregates_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fake worker pids writing to one directory, as under gunicorn (client_python's trick)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    workers = []
    for pid in (101, 102):
        monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda pid=pid: pid))
        m = Metrics(str(tmp_path))
        m.init_server(
            "replica-a", [("diabetes", "1.0.0", "abc", True)], {"diabetes": True}, "swarm-0123"
        )
        m.observe_request("diabetes", "1.0.0", "plumber", 200, 0.001)
        m.request_started()
        workers.append(m)

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = workers[0].render()[0].decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    samples = scrape()
    ok = (("endpoint", "plumber"), ("model", "diabetes"), ("status", "200"), ("version", "1.0.0"))
    assert samples[("modelfleet_requests_total", ok)] == 2
    assert samples[("modelfleet_workers", ())] == 2
    assert samples[("modelfleet_requests_in_flight", ())] == 2
    assert samples[("modelfleet_busy_workers", ())] == 2
    info = [k for k in samples if k[0] == "modelfleet_model_info"]
    assert info == [
        (
            "modelfleet_model_info",
            (("current", "true"), ("model", "diabetes"), ("sha256", "abc"), ("version", "1.0.0")),
        )
    ]
    replica = (("release", "swarm-0123"), ("replica", "replica-a"))
    assert samples[("modelfleet_replica_info", replica)] == 1

    mark_process_dead(102)
    samples = scrape()
    assert samples[("modelfleet_workers", ())] == 1
    assert samples[("modelfleet_requests_in_flight", ())] == 1
    assert samples[("modelfleet_requests_total", ok)] == 2  # counters survive their worker
