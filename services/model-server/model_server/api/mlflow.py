"""MLflow scoring-server compatibility.

MLflow's ``POST /invocations`` shares its path with the SageMaker contract, so that route
lives in ``sagemaker.py``, which hands JSON bodies to ``parse_request`` here. Accepted bodies
are MLflow 2's: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``,
``{"dataframe_records": [{...}]}``, ``{"instances": [...]}`` and ``{"inputs": ...}`` (optionally
with ``params``, ignored); the answer is ``{"predictions": [...]}`` like MLflow's pyfunc
scoring server (class labels for classifiers, numbers for regression).

This blueprint adds MLflow's remaining scoring-server routes, ``GET /health`` and
``GET /version``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response

from model_server import __version__
from model_server.api.common import endpoint_label, json_response, readiness_response
from model_server.core.parsing import parse_json_body
from model_server.core.predict import Prediction
from model_server.core.schema import Schema

bp = Blueprint("mlflow", __name__)


def parse_request(body: bytes, schema: Schema, max_rows: int) -> np.ndarray:
    """An MLflow (or plain) JSON request body as a validated feature matrix."""
    return parse_json_body(body, schema, max_rows)


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
