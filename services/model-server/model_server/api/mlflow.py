"""MLflow scoring-server compatibility.

MLflow's ``POST /invocations`` shares its path with the SageMaker contract, so that route
lives in ``sagemaker.py``, whose JSON bodies are parsed by ``core.parsing.parse_json_body``,
which takes MLflow 2's shapes: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``,
``{"dataframe_records": [{...}]}``, ``{"instances": [...]}`` and ``{"inputs": ...}`` (optionally
with ``params``, ignored); the answer is ``{"predictions": [...]}`` like MLflow's pyfunc
scoring server (class labels for classifiers, numbers for regression).

This blueprint adds MLflow's remaining scoring-server routes, ``GET /health`` and
``GET /version``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from model_server import __version__
from model_server.api.common import endpoint_label, json_response, readiness_response
from model_server.core.predict import Prediction

bp = Blueprint("mlflow", __name__)


def format_response(result: Prediction) -> dict[str, Any]:
    """MLflow's response shape."""
    return {"predictions": result.predictions}


@bp.get("/health")
@endpoint_label("health")
def health() -> Response:
    """MLflow's health route: 200 when ready, 503 otherwise."""
    return readiness_response()


@bp.get("/version")
@endpoint_label("metadata")
def version() -> Response:
    """Server version (MLflow answers its own version here)."""
    return json_response({"version": __version__})
