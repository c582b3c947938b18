"""The `diabetes` model for the peer servers of `make bench-peers`, fitted exactly as ModelFleet.

Runs inside the peers' throwaway environments (build/peers/<peer>/), which have scikit-learn
but not the model server (nor the bench package). It fits the same estimator on the same
vendored rows with the same call as services/model-server/model_server/train.py
(`train_diabetes`), taking the features, the training file, the target column and the threshold
from the manifest of its current version in the model repository (models/), then checks the
coefficients against that manifest, so every server in the benchmark answers with the same model.

    python peer_model.py mlflow OUT_DIR   # save it as an MLflow model (mlflow.sklearn)
    python peer_model.py check            # fit and verify only
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = ROOT / "models"
_CURRENT = json.loads((REPOSITORY / "index.json").read_text())["models"]["diabetes"]["current"]
MANIFEST = REPOSITORY / "diabetes" / _CURRENT / "manifest.json"


def manifest(path: Path = MANIFEST) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _features(m: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f if isinstance(f, str) else f["name"] for f in m["features"])


FEATURES = _features(manifest())
THRESHOLD = float(manifest()["threshold"])
POSITIVE = str(manifest()["target"]["positive_class"])


def train(m: dict[str, Any] | None = None) -> LogisticRegression:
    m = m or manifest()
    data = ROOT / "data" / m["training_data"]["file"]
    with data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[name]) for name in _features(m)] for r in rows])
    y = np.array([r[m["target"]["name"]] for r in rows])
    return LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10).fit(x, y)


def check(model: LogisticRegression, m: dict[str, Any] | None = None) -> None:
    """Raise unless the coefficients are ModelFleet's (the manifest rounds to 6 decimals)."""
    m = m or manifest()
    expected = m["coefficients"]
    got = {"intercept": model.intercept_[0], **dict(zip(_features(m), model.coef_[0], strict=True))}
    for name, value in expected.items():
        if abs(round(float(got[name]), 6) - value) > 1e-6:
            raise SystemExit(f"peer model differs from ModelFleet's: {name} {got[name]} != {value}")


def main(argv: list[str]) -> int:
    model = train()
    check(model)
    if argv[:1] == ["mlflow"]:
        import mlflow.sklearn

        out = Path(argv[1])
        if out.exists():
            import shutil

            shutil.rmtree(out)
        mlflow.sklearn.save_model(model, str(out))
    print(f"diabetes model ok: intercept {model.intercept_[0]:.6f}, coef {model.coef_[0].round(6)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
