"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from flask import Blueprint, Response

from model_server.api.common import endpoint_label, json_response, state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@endpoint_label("health")
def healthz() -> Response:
    """Liveness: the process is up and answering. Never depends on the models."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
@endpoint_label("health")
def readyz() -> Response:
    """Readiness: 200 once at least one model is ready, 503 otherwise; the details say which
    models are ready (their current version loaded), which are not, and which versions failed."""
    registry = state().registry
    body: dict[str, object] = {
        "status": "ready" if registry.ready else "not ready",
        "models": sorted(registry.models),
        "default_model": registry.default_model,
    }
    unready = sorted(set(registry.names) - set(registry.models))
    if unready:
        body["unready_models"] = unready
    if registry.failures:
        # <name>/<version> only: the reasons (paths, hashes) are in the log, not on the wire.
        body["failed_models"] = sorted(registry.failures)
    return json_response(body, 200 if registry.ready else 503)


@bp.get("/metrics")
@endpoint_label(None)  # scrapes are not counted: they would dominate the request counters
def metrics() -> Response:
    """Prometheus text exposition (aggregated over all gunicorn workers)."""
    payload, content_type = state().metrics.render()
    return Response(payload, content_type=content_type)
