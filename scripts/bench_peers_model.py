"""The `diabetes` model for the peer servers of `make bench-peers`, fitted exactly as ModelFleet.

Runs inside the peers' throwaway environments (build/peers/<peer>/), which have scikit-learn
but not the model server. It fits the same estimator on the same vendored rows with the same
call as services/model-server/model_server/train.py (`train_diabetes`), then checks the
coefficients against the manifest of the bundle that `make models` wrote, so every server in
the benchmark answers with the same model.

    python bench_peers_model.py mlflow OUT_DIR   # save it as an MLflow model (mlflow.sklearn)
    python bench_peers_model.py check            # fit and verify only
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("pregnant", "glucose", "pressure")
THRESHOLD = 0.5


def train(data: Path = ROOT / "data" / "pima_indians_diabetes.csv") -> LogisticRegression:
    with data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[name]) for name in FEATURES] for r in rows])
    y = np.array([r["diabetes"] for r in rows])
    return LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10).fit(x, y)


def check(
    model: LogisticRegression, manifest: Path = ROOT / "models" / "diabetes" / "manifest.json"
) -> None:
    """Raise unless the coefficients are ModelFleet's (the manifest rounds to 6 decimals)."""
    expected = json.loads(manifest.read_text())["coefficients"]
    got = {"intercept": model.intercept_[0], **dict(zip(FEATURES, model.coef_[0], strict=True))}
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
