"""Open Inference Protocol v2 (KServe, Triton, MLServer), REST flavour.

Routes: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready``, and per model
``GET /v2/models/<name>[/versions/<version>]`` (metadata), ``.../ready`` and
``POST .../infer``. A versioned route answers only for the version loaded.

Inputs (see ``oip_tensors.parse_tensors``): one tensor of shape ``[N, n_features]``
(FP64/FP32/FP16/INT*/UINT*) in feature order, or one tensor per feature named after it with
shape ``[N]`` or ``[N, 1]``, as JSON ``data`` or with the binary tensor data extension
(``oip_binary``). Outputs: ``predict`` (BYTES labels for classifiers, FP64 values for
regression) and, for binary classifiers with a threshold, ``probability`` (FP64 ``[N]``,
P(positive class)), for other classifiers with ``predict_proba``, ``probabilities`` (FP64
``[N, n_classes]``, columns in the order of the metadata's ``parameters.classes``); the
request's ``outputs`` list may select a subset and ask for binary data. A string
(categorical) feature is a ``BYTES`` tensor named after it (``oip_tensors``).

Errors are ``{"error": "<code>: <message>"}``, the string the protocol specifies
(``pipeline.error_body``).
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Final

from flask import Blueprint, Response, request

from model_server import __version__
from model_server.api import oip_binary
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
from model_server.api.oip_tensors import parse_tensors
from model_server.core.errors import RequestError
from model_server.core.parsing import decode_json
from model_server.core.registry import LoadedModel

bp = Blueprint("oip_v2", __name__, url_prefix="/v2")
# The binary extension is often sent as application/octet-stream (KServe's client does).
_REQUEST_MIMETYPES: Final = KSERVE_JSON_MIMETYPES | {"application/octet-stream"}


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


def _versioned(name: str, version: str | None) -> LoadedModel:
    """The model in the version the route names (the current one when it names none)."""
    return get_model(name, version)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
@endpoint_label("metadata")
def model_metadata(name: str, version: str | None = None) -> Response:
    """Model metadata with the input and output tensor specifications."""
    model = _versioned(name, version)
    return json_response(metadata(model, sorted(state().registry.versions[model.name])))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
@endpoint_label("metadata")
def model_ready(name: str, version: str | None = None) -> Response:
    """Model readiness (a model that failed to load answers 503)."""
    return json_response({"name": _versioned(name, version).name, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@endpoint_label("infer")
def infer(name: str, version: str | None = None) -> Response:
    """Run inference on typed tensors, in JSON or with the binary tensor data extension."""
    model = _versioned(name, version)
    body = _read_request()
    if type(body) is not dict:
        raise RequestError("malformed_body", "the body must be an inference request object")
    for key, kind, what in (("id", str, "a string"), ("parameters", dict, "an object")):
        if key in body and type(body[key]) is not kind:
            raise RequestError("malformed_body", f"{key} must be {what}", field=key)
    # Every part of the request is checked before the model runs.
    binary_output = body.get("parameters", {}).get("binary_data_output", False)
    if type(binary_output) is not bool:
        raise RequestError(
            "malformed_body", "parameters.binary_data_output must be a boolean", field="parameters"
        )
    available = output_names(model)
    wanted = (
        _requested_outputs(body["outputs"], set(available))
        if "outputs" in body
        else dict.fromkeys(available, False)
    )
    x = parse_tensors(body.get("inputs"), model.bundle.schema, state().settings.max_rows)
    result = predict(model, x)
    n = len(x)
    data = {
        "predict": result.predictions,
        "probability": result.probabilities,
        # Row-major and flat, as Triton answers: every client reshapes by ``shape``.
        "probabilities": list(chain.from_iterable(result.class_probabilities or ())),
    }
    outputs = [
        {"name": name, "datatype": datatype, "shape": _shape(model, name, n), "data": data[name]}
        for name, datatype in available.items()
        if name in wanted
    ]
    binary = {name for name, as_binary in wanted.items() if as_binary or binary_output}
    response: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.bundle.version,
        "outputs": outputs,
    }
    if "id" in body:
        response["id"] = body["id"]
    payload, header_length = oip_binary.frame_response(response, binary)
    if header_length is None:
        return Response(payload, mimetype="application/json")
    return Response(
        payload,
        mimetype="application/octet-stream",
        headers={oip_binary.HEADER_LENGTH: str(header_length)},
    )


def _read_request() -> Any:
    """The inference request: JSON (also without a Content-Type, as Triton's client sends
    it), or the binary extension's JSON header with its inputs' binary data attached."""
    require_mimetype(_REQUEST_MIMETYPES, advertised=JSON_MIMETYPES)
    raw = request_body()
    header_length = request.headers.get(oip_binary.HEADER_LENGTH)
    if header_length is None:
        return decode_json(raw)
    body, data = oip_binary.split_request(raw, header_length)
    if type(body) is dict:
        oip_binary.attach_binary_inputs(body.get("inputs"), data)
    elif len(data):
        raise RequestError("malformed_body", "the body must be an inference request object")
    return body


def output_names(model: LoadedModel) -> dict[str, str]:
    """The model's output tensors and their datatypes, in answer order."""
    predictor = model.predictor
    if predictor.thresholded:
        return {"predict": "BYTES", "probability": "FP64"}
    if predictor.per_class:
        return {"predict": "BYTES", "probabilities": "FP64"}
    if model.bundle.task == "classification":
        return {"predict": "BYTES"}
    return {"predict": "FP64"}


def _shape(model: LoadedModel, output: str, rows: int) -> list[int]:
    """An output tensor's shape: ``[rows]``, or ``[rows, n_classes]`` for ``probabilities``."""
    if output == "probabilities":
        return [rows, len(model.predictor.class_labels)]
    return [rows]


def _requested_outputs(wanted: Any, available: set[str]) -> dict[str, bool]:
    """The requested output names, each with whether it was asked for in binary."""
    if type(wanted) is not list or not all(
        type(o) is dict
        and type(o.get("name")) is str
        and type(o.get("parameters", {})) is dict
        and type(o.get("parameters", {}).get("binary_data", False)) is bool
        for o in wanted
    ):
        raise RequestError(
            "malformed_body",
            'outputs must be an array of {"name": ..., "parameters"?: {"binary_data"?: bool}}',
            field="outputs",
        )
    names = {o["name"]: o.get("parameters", {}).get("binary_data", False) for o in wanted}
    unknown = set(names) - available
    if unknown:
        raise RequestError(
            "malformed_body",
            f"unknown output {sorted(unknown)[0]!r}; available: {', '.join(sorted(available))}",
            field="outputs",
        )
    return names


def metadata(model: LoadedModel, versions: list[str]) -> dict[str, Any]:
    """OIP model metadata for ``model``, one of the loaded ``versions`` of its model."""
    schema = model.bundle.schema
    outputs = [
        {"name": name, "datatype": datatype, "shape": _shape(model, name, -1)}
        for name, datatype in output_names(model).items()
    ]
    parameters: dict[str, Any] = {"features": list(schema.names)}
    if schema.strings:
        # One tensor per feature is the only form: the inputs list them.
        inputs = [
            {"name": f.name, "datatype": "BYTES" if f.is_string else "FP64", "shape": [-1]}
            for f in schema.features
        ]
        parameters["categories"] = {f.name: list(f.categories or ()) for _, f, _ in schema.strings}
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, schema.width]}]
        parameters["feature_tensors"] = (
            "alternatively one tensor per feature, named after it, shape [-1] or [-1, 1]"
        )
    parameters["task"] = model.bundle.task
    if model.predictor.class_labels and not model.predictor.thresholded:
        parameters["classes"] = list(model.predictor.class_labels)
    return {
        "name": model.name,
        "versions": versions,
        "platform": "sklearn",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": parameters,
    }
