"""The R plumber API this server replaces: ``GET /predict_data?<features>``.

Answers ``{"Answer": [...]}`` like plumber's default JSON serializer: the class label for
classifiers (``"yes"``/``"no"``), the value rounded to 4 decimals for regression.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from model_server.api.common import endpoint_label, get_model, json_response, predict
from model_server.core.parsing import parse_query

bp = Blueprint("plumber", __name__)


@bp.get("/predict_data")
@endpoint_label("plumber")
def predict_default() -> Response:
    """Plumber route on the default model (``diabetes``)."""
    return _answer(None)


@bp.get("/models/<name>/predict_data")
@endpoint_label("plumber")
def predict_named(name: str) -> Response:
    """Plumber route on any model."""
    return _answer(name)


def _answer(name: str | None) -> Response:
    model = get_model(name)
    x = parse_query(request.args.items(multi=True), model.bundle.schema)
    result = predict(model, x)
    answers = (
        result.predictions
        if result.probabilities is not None
        else [round(v, 4) for v in result.predictions]
    )
    return json_response({"Answer": answers})
