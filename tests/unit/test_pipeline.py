"""The request pipeline: one request id, one set of headers and metrics, one error renderer.

The fast route table and Flask's routing reach the same route handlers: with the table
switched off, every answer and every counter is the same.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from model_server.api.pipeline import Pipeline
from unit_helpers import BOSTON_COLUMNS, BOSTON_VALUES, sample
from werkzeug.test import Client

BOSTON_QUERY = "&".join(f"{k}={v}" for k, v in zip(BOSTON_COLUMNS, BOSTON_VALUES, strict=True))
JSON = "application/json"

#: (method, path, query or body, content type): successes and refusals of the fast routes, and
#: requests that are Flask's.
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
    # Refusals, escapes, other media types, unknown models and routes, other methods.
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
    """Two identical apps, each with its own metrics; the second without the fast route table."""
    hot, flask_only = make_app(), make_app()
    assert isinstance(hot.wsgi_app, Pipeline)
    assert isinstance(flask_only.wsgi_app, Pipeline)
    flask_only.wsgi_app.handlers = {}
    return hot, flask_only


@pytest.mark.parametrize(("method", "path", "data", "ctype"), REQUESTS)
def test_the_fast_routes_answer_like_flask_routing(
    twin_apps: tuple[Flask, Flask], method: str, path: str, data: str, ctype: str | None
) -> None:
    hot, flask_only = twin_apps
    a = _call(hot.wsgi_app, method, path, data, ctype)
    b = _call(flask_only.wsgi_app, method, path, data, ctype)
    assert a.status_code == b.status_code
    assert a.get_data() == b.get_data()
    for header in ("Content-Type", "X-Served-By", "X-Request-ID", "X-Model-Version", "Allow"):
        assert a.headers.get(header) == b.headers.get(header), header


def test_the_fast_routes_count_like_flask_routing(twin_apps: tuple[Flask, Flask]) -> None:
    hot, flask_only = twin_apps
    for _ in range(3):
        for method, path, data, ctype in REQUESTS:
            _call(hot.wsgi_app, method, path, data, ctype)
            _call(flask_only.wsgi_app, method, path, data, ctype)
    requests_total = "modelfleet_requests_total"
    v1, none = {"version": "1.0.0"}, {"model": "none", "version": "none"}
    duration_count = "modelfleet_request_duration_seconds_count"
    for name, labels in [
        (requests_total, {"model": "diabetes", **v1, "endpoint": "plumber", "status": "200"}),
        (requests_total, {"model": "boston", **v1, "endpoint": "plumber", "status": "200"}),
        (requests_total, {"model": "diabetes", **v1, "endpoint": "predict", "status": "200"}),
        (requests_total, {"model": "diabetes", **v1, "endpoint": "plumber", "status": "422"}),
        (requests_total, {**none, "endpoint": "plumber", "status": "404"}),
        ("modelfleet_predictions_total", {"model": "diabetes", "version": "1.0.0", "class": "no"}),
        ("modelfleet_predictions_total", {"model": "diabetes", "version": "1.0.0", "class": "yes"}),
        ("modelfleet_predictions_total", {"model": "boston", "version": "1.0.0", "class": "q2"}),
        ("modelfleet_prediction_rows_sum", {"model": "diabetes", "version": "1.0.0"}),
        (duration_count, {"model": "diabetes", **v1, "endpoint": "plumber"}),
        ("modelfleet_errors_total", {"model": "diabetes", "reason": "non_numeric"}),
        ("modelfleet_requests_in_flight", {}),
        ("modelfleet_busy_workers", {}),
    ]:  # fmt: skip
        assert sample(hot, name, labels) == sample(flask_only, name, labels), (name, labels)
        # Equal and not vacuously so: every counter compared here moved.
        assert labels == {} or sample(hot, name, labels) > 0, (name, labels)


def test_a_refused_fast_request_is_parsed_once_and_leaves_nothing_in_flight(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_server.api import plumber

    calls: list[object] = []
    real = plumber.parse_query

    def counting(*args: object) -> object:
        calls.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(plumber, "parse_query", counting)
    app = make_app()
    response = app.test_client().get("/predict_data?pregnant=1&glucose=abc&pressure=1")
    assert response.status_code == 422
    assert len(calls) == 1
    assert sample(app, "modelfleet_requests_in_flight") == 0
    assert (
        sample(app, "modelfleet_errors_total", {"model": "diabetes", "reason": "non_numeric"}) == 1
    )


def test_a_failure_in_a_fast_route_is_a_json_500_with_the_request_id(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    from model_server.api import plumber

    def broken(*_args: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(plumber, "run_model", broken)
    app = make_app()
    response = app.test_client().get(
        "/predict_data?pregnant=1&glucose=3&pressure=1", headers={"X-Request-ID": "req-500"}
    )
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal", "message": "internal server error"}
    }
    assert response.headers["X-Request-ID"] == "req-500"
    assert response.headers["X-Served-By"] == "replica-test"
    assert sample(app, "modelfleet_errors_total", {"model": "diabetes", "reason": "internal"}) == 1
    assert sample(app, "modelfleet_requests_in_flight") == 0


@pytest.mark.parametrize("path", ["/nothing", "/predict_data/", "/models/a/b/predict"])
def test_every_answer_carries_the_pipeline_headers(client: object, path: str) -> None:
    response = client.post(path, headers={"X-Request-ID": "req-9"})  # type: ignore[attr-defined]
    assert response.status_code in (404, 405)
    assert response.headers["X-Request-ID"] == "req-9"
    assert response.headers["X-Served-By"] == "replica-test"


def test_scrapes_are_neither_in_flight_nor_counted(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.test_client().get("/metrics")
    app.test_client().get("/metrics")
    counted = sum(s.value for f in app.extensions["modelfleet"].metrics.registry.collect()
                  for s in f.samples if s.name == "modelfleet_requests_total")  # fmt: skip
    assert counted == 0
    assert sample(app, "modelfleet_requests_in_flight") == 0


@pytest.mark.parametrize(
    ("extra", "body", "expected"),
    [
        ({"CONTENT_LENGTH": "5"}, b"hello", b"hello"),
        ({"CONTENT_LENGTH": "3"}, b"hello", b"hel"),  # never past the declared length
        ({"CONTENT_LENGTH": ""}, b"hello", b""),  # no length, not chunked: no body
        ({"CONTENT_LENGTH": "x"}, b"hello", b""),
        ({"wsgi.input_terminated": True}, b"chunked", b"chunked"),  # gunicorn's chunked body
        ({"CONTENT_LENGTH": "11"}, b"hello world", "body_too_large"),
        ({"wsgi.input_terminated": True}, b"a" * 11, "body_too_large"),
    ],
)
def test_read_body_reads_the_declared_or_chunked_body_up_to_the_limit(
    extra: dict[str, object], body: bytes, expected: object
) -> None:
    import io

    from model_server.api.common import read_body
    from model_server.core.errors import RequestError

    environ = {"wsgi.input": io.BytesIO(body), **extra}
    if isinstance(expected, bytes):
        assert read_body(environ, 10) == expected
    else:
        with pytest.raises(RequestError) as caught:
            read_body(environ, 10)
        assert (caught.value.code, caught.value.status) == (expected, 413)
