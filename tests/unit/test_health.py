"""Liveness, readiness and the response headers every route carries."""

from __future__ import annotations

import orjson
from flask.testing import FlaskClient


def test_healthz_is_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_lists_the_models_once_all_are_verified(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "models": ["boston", "diabetes", "diabetes-gbt"],
        "default_model": "diabetes",
    }


def test_every_response_names_the_replica(client: FlaskClient) -> None:
    for path in ("/healthz", "/nope", "/predict_data"):
        assert client.get(path).headers["X-Served-By"] == "replica-test"


def test_request_id_is_echoed(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_unsafe_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "a b\tc"})
    assert response.headers["X-Request-ID"] != "a b\tc"
    assert len(response.headers["X-Request-ID"]) == 16


def test_metrics_is_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert b"modelfleet_requests_total" in response.data


def test_gunicorn_refusals_are_json() -> None:
    from model_server.gunicorn_errors import json_error_response

    raw = json_error_response(414, "URI Too Long", "line too long (9000 > 8190)")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert orjson.loads(body) == {
        "error": {"code": "uri_too_long", "message": "URI Too Long: line too long (9000 > 8190)"}
    }
