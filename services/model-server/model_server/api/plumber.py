"""The R plumber API this server replaces: ``GET /predict_data?<features>``.

Answers ``{"Answer": [...]}`` like plumber's default JSON serializer: the class label for
classifiers (``"yes"``/``"no"``), the value rounded to 4 decimals for regression.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, request

from model_server.api.common import endpoint_label, get_model, json_response, predict
from model_server.core.parsing import parse_query
from model_server.core.predict import Prediction

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
    x = parse_query(_query_pairs(), model.bundle.schema)
    return json_response(answer_body(predict(model, x)))


def answer_body(result: Prediction) -> dict[str, Any]:
    """Plumber's answer: labels for classifiers, values rounded to 4 decimals for regression."""
    if result.probabilities is not None:
        return {"Answer": result.predictions}
    return {"Answer": [round(float(v), 4) for v in result.predictions]}


def split_plain_query(qs: str) -> list[tuple[str, str]] | None:
    """The (name, value) pairs of a plain query string, or None when it is not plain.

    The common plumber query (ASCII, no percent-escapes or ``+``, no repeated name) is split
    directly: werkzeug's parse_qsl and MultiDict would return the very same pairs in the same
    order, at several times the cost on this hot path.
    """
    if qs.isascii() and "%" not in qs and "+" not in qs:
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in qs.split("&") if p)]
        if len({k for k, _ in pairs}) == len(pairs):
            return pairs
    return None


def _query_pairs() -> Iterable[tuple[str, str]]:
    """The query's (name, value) pairs, as ``request.args.items(multi=True)`` gives them."""
    pairs = split_plain_query(request.environ.get("QUERY_STRING", ""))
    return request.args.items(multi=True) if pairs is None else pairs
