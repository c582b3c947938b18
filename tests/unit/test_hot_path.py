"""The hot path answers exactly what the Flask views answer, and counts the same metrics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from model_server.api.hot_path import HotPath
from unit_helpers import BOSTON_COLUMNS, BOSTON_VALUES, sample
from werkzeug.test import Client

BOSTON_QUERY = "&".join(f"{k}={v}" for k, v in zip(BOSTON_COLUMNS, BOSTON_VALUES, strict=True))
JSON = "application/json"

#: (method, path, query or body, content type): hot ones, and ones the hot path hands over.
REQUESTS = [
    ("GET", "/predict_data", "pregnant=1&glucose=3&pressure=1", None),
    ("GET", "/predict_data", "pregnant=6&glucose=148&pressure=72", None),
    ("GET", "/models/boston/predict_data", BOSTON_QUERY, None),
    ("GET", "/models/diabetes-gbt/predict_data", "pregnant=6&glucose=148&pressure=72&triceps=35"
     "&insulin=0&mass=33.6&pedigree=0.627&age=50", None),
    ("POST", "/models/diabetes/predict", '{"pregnant":1,"glucose":148,"pressure":72}', JSON),
    ("POST", "/models/diabetes/predict", '[[1,148,72],[2,100,60]]', JSON),
    ("POST", "/models/boston/predict", '{"inputs":{"crim":[0.01],"zn":[18],"indus":[2.3],'
     '"chas":[0],"nox":[0.5],"rm":[6],"age":[65],"dis":[4],"rad":[1],"tax":[242]}}', JSON),
    ("POST", "/models/diabetes/predict", '{"pregnant":1,"glucose":148,"pressure":72}',
     "application/json; charset=utf-8"),
    # Handed over to Flask: refusals, escapes, other media types, unknown routes.
    ("GET", "/predict_data", "pregnant=1&glucose=abc&pressure=1", None),
    ("GET", "/predict_data", "pregnant=1&glucose=3", None),
    ("GET", "/predict_data", "pregnant=1&glucose=3&pressure=1&pressure=2", None),
    ("GET", "/predict_data", "pregnant=1&glucose=%33&pressure=1", None),
    ("GET", "/predict_data", "pregnant=1&glucose=3&pressure=1&extra=1", None),
    ("POST", "/models/diabetes/predict", '{"pregnant":1,"glucose":148}', JSON),
    ("POST", "/models/diabetes/predict", '{"pregnant":1,', JSON),
    ("POST", "/models/diabetes/predict", "[]", JSON),
    ("POST", "/models/diabetes/predict", "pregnant,glucose,pressure\n1,148,72\n", "text/csv"),
    ("POST", "/models/diabetes/predict", "x", "text/plain"),
    ("GET", "/models/nope/predict_data", "a=1", None),
    ("PUT", "/predict_data", "pregnant=1&glucose=3&pressure=1", None),
]  # fmt: skip


def _call(wsgi: Callable, method: str, path: str, data: str, ctype: str | None):
    client = Client(wsgi)
    headers = {"X-Request-ID": "req-1"}
    if method == "GET" or method == "PUT":
        return client.open(path, method=method, query_string=data, headers=headers)
    return client.open(path, method=method, data=data.encode(), content_type=ctype,
                       headers=headers)  # fmt: skip


@pytest.fixture
def twin_apps(make_app: Callable[..., Flask]) -> tuple[Flask, Flask]:
    """Two identical apps, each with its own metrics; the second without the hot path."""
    hot, flask_only = make_app(), make_app()
    assert isinstance(hot.wsgi_app, HotPath)
    flask_only.wsgi_app = flask_only.wsgi_app.app  # type: ignore[attr-defined,method-assign]
    return hot, flask_only


@pytest.mark.parametrize(("method", "path", "data", "ctype"), REQUESTS)
def test_hot_path_answers_like_the_flask_views(
    twin_apps: tuple[Flask, Flask], method: str, path: str, data: str, ctype: str | None
) -> None:
    hot, flask_only = twin_apps
    a = _call(hot.wsgi_app, method, path, data, ctype)
    b = _call(flask_only.wsgi_app, method, path, data, ctype)
    assert a.status_code == b.status_code
    assert a.get_data() == b.get_data()
    for header in ("Content-Type", "X-Served-By", "X-Request-ID", "Allow"):
        assert a.headers.get(header) == b.headers.get(header), header


def test_hot_path_counts_the_same_metrics(twin_apps: tuple[Flask, Flask]) -> None:
    hot, flask_only = twin_apps
    for _ in range(3):
        for method, path, data, ctype in REQUESTS:
            _call(hot.wsgi_app, method, path, data, ctype)
            _call(flask_only.wsgi_app, method, path, data, ctype)
    requests_total = "modelfleet_requests_total"
    for name, labels in [
        (requests_total, {"model": "diabetes", "endpoint": "plumber", "status": "200"}),
        (requests_total, {"model": "boston", "endpoint": "plumber", "status": "200"}),
        (requests_total, {"model": "diabetes", "endpoint": "predict", "status": "200"}),
        (requests_total, {"model": "diabetes", "endpoint": "plumber", "status": "422"}),
        (requests_total, {"model": "none", "endpoint": "plumber", "status": "404"}),
        ("modelfleet_predictions_total", {"model": "diabetes", "class": "no"}),
        ("modelfleet_predictions_total", {"model": "diabetes", "class": "yes"}),
        ("modelfleet_predictions_total", {"model": "boston", "class": "value"}),
        ("modelfleet_prediction_rows_sum", {"model": "diabetes"}),
        ("modelfleet_request_duration_seconds_count", {"model": "diabetes", "endpoint": "plumber"}),
        ("modelfleet_errors_total", {"model": "diabetes", "reason": "non_numeric"}),
        ("modelfleet_requests_in_flight", {}),
        ("modelfleet_busy_workers", {}),
    ]:  # fmt: skip
        assert sample(hot, name, labels) == sample(flask_only, name, labels), (name, labels)
        # Equal and not vacuously so: every counter compared here moved.
        assert labels == {} or sample(hot, name, labels) > 0, (name, labels)
