"""The R plumber API this server replaces: ``GET /predict_data?<features>``.

Answers ``{"Answer": [...]}`` like plumber's default JSON serializer: the class label for
classifiers (``"yes"``/``"no"``), the value rounded to 4 decimals for regression.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    x = parse_query(_query_pairs(), model.bundle.schema)
    result = predict(model, x)
    answers = (
        result.predictions
        if result.probabilities is not None
        else [round(v, 4) for v in result.predictions]
    )
    return json_response({"Answer": answers})


def _query_pairs() -> Iterable[tuple[str, str]]:
    """The query's (name, value) pairs, as ``request.args.items(multi=True)`` gives them.

    The common plumber query (ASCII, no percent-escapes or ``+``, no repeated name) is split
    directly: werkzeug's parse_qsl and MultiDict would return the very same pairs in the same
    order, at several times the cost on this hot path. Anything else goes through werkzeug.
    """
    qs = request.environ.get("QUERY_STRING", "")
    if qs.isascii() and "%" not in qs and "+" not in qs:
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in qs.split("&") if p)]
        if len({k for k, _ in pairs}) == len(pairs):
            return pairs
    return request.args.items(multi=True)
