"""Liveness, readiness and the response headers every route carries."""

from __future__ import annotations

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
