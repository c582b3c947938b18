"""Baseline 1 for ``make bench``: the floor of Flask under gunicorn.

The plumber route and the JSON predict route answer one constant, precomputed JSON body and do
nothing else: no parsing, no model, no metrics, no hooks. Whatever this app serves per second
under the same gunicorn settings is the most any Flask app can serve on that CPU; the model
server's single-row predictions are measured against it (target: >= 0.85x).

Run: ``gunicorn -c services/model-server/gunicorn.conf.py --pythonpath bench/baselines
constant_app:app`` (bench/run.py does this).
"""

from __future__ import annotations

from typing import Final

from flask import Flask, Response

BODY: Final = b'{"Answer":["no"]}'

app = Flask(__name__, static_folder=None)


@app.get("/predict_data")
def predict_data() -> Response:
    """The plumber answer, constant."""
    return Response(BODY, mimetype="application/json")


@app.post("/models/<name>/predict")
def predict(name: str) -> Response:
    """The JSON route, constant (the body is not read here; gunicorn drains it)."""
    return Response(BODY, mimetype="application/json")


@app.get("/readyz")
def readyz() -> Response:
    """Readiness, for the bench driver."""
    return Response(b'{"status":"ready"}', mimetype="application/json")
