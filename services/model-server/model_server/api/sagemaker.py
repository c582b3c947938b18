"""Amazon SageMaker's container contract: ``GET /ping`` and ``POST /invocations``.

* ``X-Amzn-SageMaker-Target-Model`` names the model (the default model when absent), or a
  version of it as ``<name>/<version>``, the model's path in the repository.
* ``text/csv`` bodies are rows in feature order without a header (a header line is accepted
  too); ``application/json`` bodies take any shape ``core.parsing.parse_json_body`` takes,
  MLflow's among them, which makes this route MLflow's ``/invocations`` as well.
* The answer is ``{"predictions": [...]}``, or one prediction per line when the request sends
  ``Accept: text/csv``.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from model_server.api import mlflow
from model_server.api.common import (
    CSV_MIMETYPES,
    JSON_MIMETYPES,
    endpoint_label,
    get_model,
    json_response,
    parse_table,
    predict,
    readiness_response,
    request_body,
    require_mimetype,
    state,
)

bp = Blueprint("sagemaker", __name__)
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"


@bp.get("/ping")
@endpoint_label("health")
def ping() -> Response:
    """SageMaker health check: 200 once every model is loaded and verified, else 503."""
    return readiness_response()


@bp.post("/invocations")
@endpoint_label("invocations")
def invocations() -> Response:
    """Predict CSV rows or an MLflow/plain JSON body."""
    name, _, version = (request.headers.get(TARGET_MODEL_HEADER) or "").partition("/")
    model = get_model(name or None, version or None)
    mimetype = require_mimetype(JSON_MIMETYPES | CSV_MIMETYPES)
    x = parse_table(mimetype, request_body(), model.bundle.schema, state().settings.max_rows)
    result = predict(model, x)
    # JSON unless the client prefers CSV (no Accept header or */* -> JSON).
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        lines = "".join(f"{p}\n" for p in result.predictions)
        return Response(lines, mimetype="text/csv")
    return json_response(mlflow.format_response(result))
