"""The R plumber API this server replaces: ``GET /predict_data?<features>``.

Answers ``{"Answer": [...]}`` like plumber's default JSON serializer: the class label for
classifiers (``"yes"``/``"no"``), the value rounded to 4 decimals for regression.

``answer`` is the route's one implementation: the pipeline's fast route table calls it for
GET, and the Flask views below (reached for HEAD) call it too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
import werkzeug.urls  # noqa: F401  (registers the "werkzeug.url_quote" codec error handler)
from flask import Blueprint, Response, request

from model_server.api.common import (
    ServerState,
    endpoint_label,
    lookup_model,
    run_model,
    state,
)
from model_server.api.pipeline import Environ
from model_server.core.parsing import parse_query
from model_server.core.predict import Prediction

bp = Blueprint("plumber", __name__)


def answer(st: ServerState, environ: Environ, name: str | None, version: str | None) -> bytes:
    """The plumber answer (JSON) to the query of ``environ`` on model ``name`` (``None``: the
    default model) in ``version`` (``None``: its current version)."""
    model = lookup_model(st.registry, environ, name, version)
    x = parse_query(query_pairs(environ.get("QUERY_STRING", "")), model.bundle.schema)
    result = run_model(st.metrics, model, x)
    return orjson.dumps(answer_body(result), option=orjson.OPT_SERIALIZE_NUMPY)


@bp.get("/predict_data")
@endpoint_label("plumber")
def predict_default() -> Response:
    """Plumber route on the default model (``diabetes``)."""
    return Response(answer(state(), request.environ, None, None), mimetype="application/json")


@bp.get("/models/<name>/predict_data")
@bp.get("/models/<name>/versions/<version>/predict_data")
@endpoint_label("plumber")
def predict_named(name: str, version: str | None = None) -> Response:
    """Plumber route on any model and version."""
    return Response(answer(state(), request.environ, name, version), mimetype="application/json")


def answer_body(result: Prediction) -> dict[str, Any]:
    """Plumber's answer: labels for classifiers, values rounded to 4 decimals for regression."""
    if result.classification:
        return {"Answer": result.predictions}
    return {"Answer": [round(float(v), 4) for v in result.predictions]}


def query_pairs(qs: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query string, as werkzeug's ``request.args`` has them.

    The common plumber query (ASCII, no percent-escapes or ``+``) is split directly:
    ``parse_qsl`` would return the very same pairs in the same order, at several times the
    cost on this hot path. Invalid percent-escapes stay as they are, as in werkzeug.
    """
    if qs.isascii() and "%" not in qs and "+" not in qs:
        return [(k, v) for k, _, v in (p.partition("=") for p in qs.split("&") if p)]
    return parse_qsl(qs, keep_blank_values=True, errors="werkzeug.url_quote")
