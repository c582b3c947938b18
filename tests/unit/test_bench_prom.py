"""bench.prom: Prometheus' answers as numbers, and queries against a real (tiny) HTTP server."""

from __future__ import annotations

import pytest

from bench import prom
from tests.unit.bench_http import serve

VECTOR = [
    {"metric": {"replica": "b", "instance": "10.0.0.2:8000"}, "value": [1700000000.0, "2.5"]},
    {"metric": {"replica": "a", "instance": "10.0.0.1:8000"}, "value": [1700000000.0, "1"]},
    {"metric": {"instance": "10.0.0.3:8000"}, "value": [1700000000.0, "9"]},
]


def test_data_is_returned_only_from_a_successful_answer() -> None:
    assert prom.data({"status": "success", "data": {"result": []}}) == {"result": []}
    with pytest.raises(prom.PrometheusError, match="bad_data: parse error at char 5"):
        prom.data({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})


def test_a_scalar_is_the_first_samples_value_and_none_when_there_is_nothing() -> None:
    assert prom.scalar(VECTOR) == 2.5
    assert prom.scalar([]) is None
    assert prom.scalar([{"metric": {}, "value": [0, "NaN"]}]) is None


def test_samples_are_keyed_by_a_label_and_those_without_it_are_left_out() -> None:
    assert prom.by_label(VECTOR, "replica") == {"a": 1.0, "b": 2.5}


def test_a_query_sends_the_expression_and_the_time_and_returns_the_vector() -> None:
    answer = {"status": "success", "data": {"resultType": "vector", "result": VECTOR}}
    with serve({"/api/v1/query": (200, answer)}) as (url, seen):
        p = prom.Prometheus(url + "/")
        assert p.query('up{job="model"}', at=1700000000.12345) == VECTOR
        assert p.by_label("x", "replica") == {"a": 1.0, "b": 2.5}
        assert p.scalar("count(up)", at=5) == 2.5
    assert seen[0]["query"] == {"query": ['up{job="model"}'], "time": ["1700000000.123"]}
    assert "time" not in seen[1]["query"]
    assert seen[2]["query"]["time"] == ["5.000"]


def test_a_refused_query_is_a_prometheus_error_with_its_reason() -> None:
    refused = {"status": "error", "errorType": "bad_data", "error": "invalid parameter"}
    with (
        serve({"/api/v1/query": (400, refused)}) as (url, _),
        pytest.raises(prom.PrometheusError, match="invalid parameter"),
    ):
        prom.Prometheus(url).query("sum(")


def test_any_api_path_returns_its_data() -> None:
    answer = {"status": "success", "data": {"activeTargets": [{"health": "up"}]}}
    with serve({"/api/v1/targets": (200, answer)}) as (url, seen):
        assert prom.Prometheus(url).api("/api/v1/targets", state="active") == answer["data"]
    assert seen == [
        {"path": "/api/v1/targets", "query": {"state": ["active"]}, "method": "GET", "body": b""}
    ]
