"""Baseline 2 for ``make bench``: the naive port of the plumber API.

This is how an R plumber API is usually ported to Python: train at start-up from the CSV with
pandas, then per request build a pandas DataFrame from the query string or the JSON/CSV body
and call ``predict_proba``/``predict`` on it, answering with Flask's ``jsonify``. It serves the
same models as the model server (same data, same estimators and hyper-parameters as
``model_server.train``), so both answer the same, and the bench compares what each costs per
request (target: the model server >= 3x this app's single-row throughput).

Routes (the model server's): ``GET /predict_data?<the diabetes features>`` and
``POST /models/<diabetes|boston>/predict`` with JSON records (one object or a list), JSON
rows in feature order, or CSV with a header line.

The features of each model (and so the columns it trains on) come from the trained bundle's
manifest in ``MODELFLEET_MODEL_DIR`` (./models), as the model server's do.

Run: ``gunicorn -c services/model-server/gunicorn.conf.py --pythonpath bench/baselines
naive_app:app`` with ``BENCH_DATA_DIR`` pointing at the vendored ``data/`` and
``MODELFLEET_MODEL_DIR`` at the trained bundles (bench/run.py does this).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flask import Flask, Response, jsonify, request
from sklearn.linear_model import LinearRegression, LogisticRegression

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", ROOT / "data"))
MODEL_DIR = Path(os.environ.get("MODELFLEET_MODEL_DIR", ROOT / "models"))


def _features(name: str) -> list[str]:
    """The model's features, in order, from the manifest of its current version."""
    current = json.loads((MODEL_DIR / "index.json").read_text())["models"][name]["current"]
    manifest = json.loads((MODEL_DIR / name / current / "manifest.json").read_text())
    return [f if isinstance(f, str) else f["name"] for f in manifest["features"]]


DIABETES = _features("diabetes")
BOSTON = _features("boston")


def _train() -> dict[str, tuple[Any, list[str]]]:
    pima = pd.read_csv(DATA_DIR / "pima_indians_diabetes.csv")
    diabetes = LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10)
    diabetes.fit(pima[DIABETES], pima["diabetes"])
    boston_df = pd.read_csv(DATA_DIR / "boston_housing.csv")
    boston = LinearRegression().fit(boston_df[BOSTON].iloc[:400], boston_df["medv"].iloc[:400])
    return {"diabetes": (diabetes, DIABETES), "boston": (boston, BOSTON)}


MODELS = _train()
app = Flask(__name__, static_folder=None)


def _answer(name: str, df: pd.DataFrame) -> list[object]:
    model, features = MODELS[name]
    df = df[features].astype(float)
    if name == "diabetes":
        proba = model.predict_proba(df)[:, 1]  # classes_ = ["neg", "pos"]
        return ["yes" if p >= 0.5 else "no" for p in proba]
    return model.predict(df).tolist()


@app.get("/predict_data")
def predict_data() -> Response:
    """Plumber style: one row from the query string."""
    df = pd.DataFrame([request.args.to_dict()])
    return jsonify({"Answer": _answer("diabetes", df)})


@app.post("/models/<name>/predict")
def predict(name: str) -> Response:
    """JSON records (an object or a list of objects) or CSV with a header line."""
    if request.mimetype == "text/csv":
        df = pd.read_csv(io.BytesIO(request.get_data()))
    else:
        body = request.get_json()
        if isinstance(body, list) and body and isinstance(body[0], list):
            df = pd.DataFrame(body, columns=MODELS[name][1])  # rows in feature order
        else:
            df = pd.DataFrame(body if isinstance(body, list) else [body])
    return jsonify({"model": name, "predictions": _answer(name, df)})


@app.get("/readyz")
def readyz() -> Response:
    """Readiness, for the bench driver."""
    return jsonify({"status": "ready"})
