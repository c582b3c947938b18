"""Open Inference Protocol v2 (KServe, Triton, MLServer), REST flavour.

Routes: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/<name>``, ``GET /v2/models/<name>/ready``, ``POST /v2/models/<name>/infer``.

Inputs (see ``core.parsing.parse_tensors``): one tensor of shape ``[N, n_features]``
(FP64/FP32/FP16/INT*/UINT*) in feature order, or one tensor per feature named after it with
shape ``[N]`` or ``[N, 1]``. Outputs: ``predict`` (BYTES labels for classifiers, FP64 values
for regression) and, for classifiers, ``probability`` (FP64, P(positive class)); the request's
``outputs`` list may select a subset.

Errors use the server's standard body ``{"error": {"code", "message", "field"?}}`` rather than
the protocol's ``{"error": "<string>"}``: one error shape across every API keeps clients and
dashboards simple, and OIP clients that print the ``error`` member still show the message.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from model_server import __version__
from model_server.api.common import (
    JSON_MIMETYPES,
    endpoint_label,
    get_model,
    json_response,
    predict,
    require_mimetype,
    state,
)
from model_server.core.errors import RequestError
from model_server.core.parsing import decode_json, parse_tensors
from model_server.core.registry import LoadedModel

bp = Blueprint("oip_v2", __name__, url_prefix="/v2")


@bp.get("")
@endpoint_label("metadata")
def server_metadata() -> Response:
    """Server metadata."""
    return json_response({"name": "modelfleet", "version": __version__, "extensions": []})


@bp.get("/health/live")
@endpoint_label("health")
def live() -> Response:
    """Liveness."""
    return json_response({"live": True})


@bp.get("/health/ready")
@endpoint_label("health")
def ready() -> Response:
    """Readiness: 200 when every model is loaded and verified, 503 otherwise."""
    is_ready = state().registry.ready
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@bp.get("/models/<name>")
@endpoint_label("metadata")
def model_metadata(name: str) -> Response:
    """Model metadata with the input and output tensor specifications."""
    return json_response(metadata(get_model(name)))


@bp.get("/models/<name>/ready")
@endpoint_label("metadata")
def model_ready(name: str) -> Response:
    """Model readiness (a model that failed to load answers 503)."""
    return json_response({"name": get_model(name).name, "ready": True})


@bp.post("/models/<name>/infer")
@endpoint_label("infer")
def infer(name: str) -> Response:
    """Run inference on typed tensors."""
    model = get_model(name)
    require_mimetype(JSON_MIMETYPES)
    body = decode_json(request.get_data(cache=False))
    if type(body) is not dict:
        raise RequestError("malformed_body", "the body must be an inference request object")
    for key, kind, name in (("id", str, "a string"), ("parameters", dict, "an object")):
        if key in body and type(body[key]) is not kind:
            raise RequestError("malformed_body", f"{key} must be {name}", field=key)
    x = parse_tensors(body.get("inputs"), model.bundle.schema, state().settings.max_rows)
    result = predict(model, x)
    n = len(x)
    classifier = result.probabilities is not None
    outputs = [
        {
            "name": "predict",
            "datatype": "BYTES" if classifier else "FP64",
            "shape": [n],
            "data": result.predictions,
        }
    ]
    if classifier:
        outputs.append(
            {"name": "probability", "datatype": "FP64", "shape": [n], "data": result.probabilities}
        )
    if "outputs" in body:
        names = _requested_outputs(body["outputs"], {o["name"] for o in outputs})
        outputs = [o for o in outputs if o["name"] in names]
    response: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.bundle.version,
        "outputs": outputs,
    }
    if "id" in body:
        response["id"] = body["id"]
    return json_response(response)


def _requested_outputs(wanted: Any, available: set[str]) -> set[str]:
    if type(wanted) is not list or not all(
        type(o) is dict and type(o.get("name")) is str for o in wanted
    ):
        raise RequestError("malformed_body", 'outputs must be an array of {"name": ...} objects')
    names = {o["name"] for o in wanted}
    unknown = names - available
    if unknown:
        raise RequestError(
            "malformed_body",
            f"unknown output {sorted(unknown)[0]!r}; available: {', '.join(sorted(available))}",
            field="outputs",
        )
    return names


def metadata(model: LoadedModel) -> dict[str, Any]:
    """OIP model metadata for ``model``."""
    schema = model.bundle.schema
    classifier = model.bundle.task == "classification"
    outputs = [{"name": "predict", "datatype": "BYTES" if classifier else "FP64", "shape": [-1]}]
    if classifier:
        outputs.append({"name": "probability", "datatype": "FP64", "shape": [-1]})
    return {
        "name": model.name,
        "versions": [model.bundle.version],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, schema.width]}],
        "outputs": outputs,
        "parameters": {
            "features": list(schema.names),
            "feature_tensors": "alternatively one tensor per feature, named after it, "
            "shape [-1] or [-1, 1]",
            "task": model.bundle.task,
        },
    }
