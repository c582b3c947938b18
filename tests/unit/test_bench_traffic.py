"""bench/traffic.py: the bounded client traffic of the stack tests and `make chaos`, against a
real HTTP server on 127.0.0.1 with canned answers."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from bench import traffic
from tests.unit.bench_http import serve

LISTING = {
    "default_model": "diabetes",
    "models": [{"name": "diabetes", "features": ["pregnant", "glucose", "pressure"]}],
}
SHED = (503, {"error": {"code": "overloaded", "message": "busy"}}, {"Retry-After": "1"})
EMPTY = (503, {"error": {"code": "unavailable", "message": "no replica"}})


def answers(*cycle: tuple[Any, ...]) -> Callable[[], tuple[Any, ...]]:
    """A route answering each of ``cycle`` in turn, round and round."""
    it = itertools.cycle(cycle)
    return lambda: next(it)


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    r.headers.update(headers or {})
    return r


def wait_for(load: traffic.Load, n: int, timeout: float = 30) -> None:
    """Until the load has sent ``n`` requests (bounded, so a broken load fails, never hangs)."""
    deadline = time.monotonic() + timeout
    while load.result.total < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_percentile_is_nearest_rank_and_nan_when_empty() -> None:
    values = [float(v) for v in range(1, 101)]
    assert traffic.percentile(values, 0.5) == 51
    assert traffic.percentile(values, 0.99) == 100
    assert traffic.percentile([3.0], 0.99) == 3
    assert traffic.percentile([], 0.5) != traffic.percentile([], 0.5)  # NaN


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (response(*SHED), None),
        (response(503, SHED[1]), "503 without Retry-After: 1"),
        (
            response(503, b"<html>busy</html>", {"Retry-After": "1"}),
            "503 not JSON in the error shape",
        ),
        (response(503, EMPTY[1], {"Retry-After": "1"}), "503 unavailable"),
    ],
)
def test_a_shed_answer_is_json_overloaded_with_retry_after(
    answer: requests.Response, problem: str | None
) -> None:
    assert traffic.shed_answer_problem(answer) == problem


def test_shed_or_empty_accepts_only_the_load_balancers_json_503s() -> None:
    assert traffic.shed_or_empty(response(*SHED)) == "503 overloaded"
    assert traffic.shed_or_empty(response(*EMPTY)) == "503 unavailable"
    assert traffic.shed_or_empty(response(503, b"<html></html>")) is None
    assert traffic.shed_or_empty(response(500, EMPTY[1])) is None
    assert traffic.shed_or_empty(response(503, {"error": {"code": 7}})) is None


def test_load_sends_plumber_gets_and_json_posts_and_counts_what_came_back() -> None:
    routes = {
        "/models": (200, LISTING),
        "/predict_data": (200, {"Answer": ["no"]}, {"X-Served-By": "r1"}),
        "/models/diabetes/predict": answers((200, {"predictions": ["no"]}), (500, {"error": "x"})),
    }
    with serve(routes) as (url, seen), traffic.Load(url, threads=1, max_requests=40) as load:
        wait_for(load, 40)
    result = load.result
    assert result.total == 40 and len(result.seconds) == 40
    assert result.failed == result.failures["HTTP 500"] > 0
    assert result.ok == 40 - result.failed
    assert result.served_by["r1"] == 20
    posts = [json.loads(r["body"]) for r in seen if r["method"] == "POST"]
    assert posts[0] == {"pregnant": 1, "glucose": 148, "pressure": 72}
    gets = [r for r in seen if r["path"] == "/predict_data"]
    assert gets[0]["query"] == {"pregnant": ["1"], "glucose": ["3"], "pressure": ["1"]}
    assert result.percentile(0.99) >= result.percentile(0.5)


def test_load_counts_designed_refusals_apart_from_failures() -> None:
    routes = {
        "/models": (200, LISTING),
        "/predict_data": answers(EMPTY, (502, {"error": "bad"})),
        "/models/diabetes/predict": SHED,
    }
    with (
        serve(routes) as (url, _),
        traffic.Load(url, threads=1, max_requests=8, refusal=traffic.shed_or_empty) as load,
    ):
        wait_for(load, 8)
    assert load.result.refused == {"503 overloaded": 4, "503 unavailable": 2}
    assert load.result.failures == {"HTTP 502": 2}
    assert load.result.total == 8


def test_load_counts_a_refused_connection_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic.models, "plumber_path", lambda url: "/predict_data?pregnant=1")
    monkeypatch.setattr(
        traffic.models, "served_features", lambda url: {"diabetes": ("a", "b", "c")}
    )
    # Nothing listens on the discard port.
    with traffic.Load("http://127.0.0.1:9", threads=1, max_requests=3) as load:
        wait_for(load, 3)
    assert load.result.failures == {"ConnectionError": 3}
    assert load.result.served_by == {}


def test_overload_tells_shed_answers_from_malformed_ones() -> None:
    routes = {
        "/predict": answers((200, {"predictions": []}), SHED, (503, SHED[1]), (500, {"error": "x"}))
    }
    with serve(routes) as (url, seen):
        result = traffic.overload(url + "/predict", b"[]", clients=1, seconds=5, max_requests=8)
    assert result.total == 8 == len(seen)
    assert result.statuses == {200: 2, 503: 4, 500: 2}
    assert result.malformed == {
        "503 without Retry-After: 1": 2,
        "HTTP 500 application/json": 2,
    }
    assert len(result.accepted_seconds) == 2 and len(result.shed_seconds) == 4
    assert result.percentile(0.99, shed=True) >= 0


def test_batch_body_is_rows_of_the_training_data_named_as_served() -> None:
    listing = {
        "default_model": "diabetes",
        "models": [{"name": "diabetes", "features": ["pregnant", "glucose"]}],
    }
    routes = {
        "/models": (200, listing),
        "/models/diabetes": (200, {"training_data": {"file": "pima_indians_diabetes.csv"}}),
    }
    with serve(routes) as (url, _):
        rows = json.loads(traffic.batch_body(url, "diabetes", 3))
    assert len(rows) == 3
    assert set(rows[0]) == {"pregnant", "glucose"}


def test_a_paced_load_sends_no_more_than_its_rate() -> None:
    routes = {
        "/models": (200, LISTING),
        "/predict_data": (200, {}),
        "/models/diabetes/predict": (200, {}),
    }
    with serve(routes) as (url, seen), traffic.Load(url, threads=2, max_seconds=1, rate=10) as load:
        time.sleep(1.5)
    # 10 a second for 1 s, 2 threads each on its own schedule: the first of each at once.
    assert 1 <= load.result.total <= 12
    assert load.result.total == len([r for r in seen if r["path"] != "/models"])
