"""KServe's V1 protocol (TensorFlow Serving style), the default of KServe's sklearn server.

Routes: ``GET /`` (liveness, ``{"status": "alive"}``, what KServe's client asks),
``GET /v1/models`` (``{"models": [names]}``), ``GET /v1/models/<name>`` (readiness,
``{"name", "ready"}``) and ``POST /v1/models/<name>:predict`` with ``{"instances": [...]}``
(or ``{"inputs": [...]}``), each instance a row in feature order or a record, answered
``{"predictions": [...]}``: the model's answer labels, or values for regression.

Errors are ``{"error": "<code>: <message>"}``, as KServe answers them
(``pipeline.error_body``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from model_server.api.common import (
    JSON_MIMETYPES,
    KSERVE_JSON_MIMETYPES,
    endpoint_label,
    get_model,
    json_response,
    predict,
    request_body,
    require_mimetype,
    state,
)
from model_server.core.errors import RequestError
from model_server.core.parsing import decode_json, parse_batch

bp = Blueprint("kserve_v1", __name__)


class ModelNameConverter(BaseConverter):
    """A model name in a V1 path: no ``/`` and no ``:``, so ``<name>:predict`` is not a name."""

    regex = r"[^/:]+"


@bp.record_once
def _add_converter(setup: BlueprintSetupState) -> None:
    # Runs before the routes below are added (deferred functions run in order).
    setup.app.url_map.converters["model"] = ModelNameConverter


@bp.get("/")
@endpoint_label("health")
def alive() -> Response:
    """Liveness, as KServe's model servers answer it at the root."""
    return json_response({"status": "alive"})


@bp.get("/v1/models")
@endpoint_label("models")
def list_models() -> Response:
    """The names of the loaded models."""
    return json_response({"models": sorted(state().registry.models)})


@bp.get("/v1/models/<model:name>")
@endpoint_label("metadata")
def model_ready(name: str) -> Response:
    """Readiness of one model (one that failed verification answers 503)."""
    return json_response({"name": get_model(name).name, "ready": True})


@bp.post("/v1/models/<model:name>:predict")
@endpoint_label("predict")
def predict_v1(name: str) -> Response:
    """Predict the instances of a V1 request."""
    model = get_model(name)
    require_mimetype(KSERVE_JSON_MIMETYPES, advertised=JSON_MIMETYPES)
    body = decode_json(request_body())
    instances = _instances(body)
    x = parse_batch(instances, model.bundle.schema, state().settings.max_rows)
    return json_response({"predictions": predict(model, x).predictions})


def _instances(body: Any) -> Any:
    if type(body) is not dict:
        raise RequestError(
            "malformed_body", 'the body must be an object {"instances": [...]}', field="instances"
        )
    keys = [k for k in ("instances", "inputs") if k in body]
    if len(keys) != 1:
        raise RequestError(
            "malformed_body",
            'the body must have exactly one of "instances" or "inputs"',
            field="instances",
        )
    extra = sorted(set(body) - {keys[0]})
    if extra:
        raise RequestError(
            "malformed_body", f"unknown member {extra[0][:50]!r} beside {keys[0]!r}", field=extra[0]
        )
    return body[keys[0]]
