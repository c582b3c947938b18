"""ModelFleet's own JSON API: model listing, manifests and ``POST /models/<name>/predict``.

Request bodies (``application/json``) — see ``core.parsing.parse_json_body``:
one record object, a list of records, a list of rows in feature order, ``{"instances": ...}``
or columnar ``{"inputs": {feature: [...]}}``. ``text/csv`` is accepted with or without a
header line.

Response::

    {"model": "diabetes", "version": "1.0.0",
     "predictions": ["no", "yes"],          # answer labels, or numbers for regression
     "probabilities": [0.08, 0.71]}          # classifiers only: P(positive class) per row

For a binary classifier with a manifest ``threshold`` (the seed diabetes models),
``probabilities`` holds the probability of the positive class (the one answered ``yes``),
the number the threshold is applied to; a per-class map would only repeat it as ``1 - p``.
Any other classifier with ``predict_proba`` answers one ``{answer label: probability}`` map
per row (``"probabilities": [{"setosa": 0.97, "versicolor": 0.03, "virginica": 0.0}]``).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, request

from model_server.api.common import (
    CSV_MIMETYPES,
    JSON_MIMETYPES,
    ServerState,
    check_media_type,
    endpoint_label,
    get_model,
    json_response,
    lookup_model,
    media_type,
    model_summary,
    parse_table,
    read_body,
    run_model,
    state,
)
from model_server.api.pipeline import Environ
from model_server.core.predict import Prediction
from model_server.core.registry import LoadedModel

bp = Blueprint("json_api", __name__)


@bp.get("/models")
@endpoint_label("models")
def list_models() -> Response:
    """Every ready model: its current version (with task and features) and the versions
    loaded beside it."""
    registry = state().registry
    body: dict[str, Any] = {
        "default_model": registry.default_model,
        "models": [
            model_summary(m, sorted(registry.versions[name]))
            for name, m in sorted(registry.models.items())
        ],
    }
    if registry.failures:
        body["failed_models"] = sorted(registry.failures)
    return json_response(body)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
@endpoint_label("models")
def get_manifest(name: str, version: str | None = None) -> Response:
    """The manifest of a model version, the current one by default (features and ranges,
    metrics, checksums, library versions)."""
    return json_response(get_model(name, version).bundle.manifest.to_dict())


def predict(st: ServerState, environ: Environ, name: str | None, version: str | None) -> bytes:
    """The answer (JSON) to a ``POST /models/<name>[/versions/<version>]/predict`` request:
    records, rows, columns, CSV.

    The route's one implementation: the pipeline's fast route table calls it, and so does
    the Flask view below when the table is off.
    """
    model = lookup_model(st.registry, environ, name, version)
    mimetype = check_media_type(media_type(environ), JSON_MIMETYPES | CSV_MIMETYPES)
    settings = st.settings
    body = read_body(environ, settings.max_body_bytes)
    x = parse_table(mimetype, body, model.bundle.schema, settings.max_rows)
    return orjson.dumps(
        prediction_body(model, run_model(st.metrics, model, x)), option=orjson.OPT_SERIALIZE_NUMPY
    )


@bp.post("/models/<name>/predict")
@bp.post("/models/<name>/versions/<version>/predict")
@endpoint_label("predict")
def predict_model(name: str, version: str | None = None) -> Response:
    """Predict a record, a batch, columns or CSV rows."""
    return Response(predict(state(), request.environ, name, version), mimetype="application/json")


def prediction_body(model: LoadedModel, result: Prediction) -> dict[str, Any]:
    """The answer of ``POST /models/<name>/predict``."""
    out: dict[str, Any] = {
        "model": model.name,
        "version": model.bundle.version,
        "predictions": result.predictions,
    }
    if result.probabilities is not None:
        out["probabilities"] = result.probabilities
    elif result.class_probabilities is not None:
        out["probabilities"] = result.per_class()
    return out
