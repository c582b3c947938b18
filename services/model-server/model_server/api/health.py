"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from flask import Blueprint, Response

from model_server.api.common import endpoint_label, json_response, state
from model_server.probes import LIVE, readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@endpoint_label("health")
def healthz() -> Response:
    """Liveness: the process is up and answering. Never depends on the models."""
    body, status = LIVE
    return json_response(body, status)


@bp.get("/readyz")
@endpoint_label("health")
def readyz() -> Response:
    """Readiness (:func:`model_server.probes.readiness`). The same answers come from the probe
    port, where they never wait behind predictions (model_server/probes.py)."""
    server = state()
    body, status = readiness(server.registry, server.settings.drain_file)
    return json_response(body, status)


@bp.get("/metrics")
@endpoint_label(None)  # scrapes are not counted: they would dominate the request counters
def metrics() -> Response:
    """Prometheus text exposition (aggregated over all gunicorn workers)."""
    payload, content_type = state().metrics.render()
    return Response(payload, content_type=content_type)
