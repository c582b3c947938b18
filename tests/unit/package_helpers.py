"""Estimators fitted on data scikit-learn ships, and their sample CSVs, for the packager tests."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

SAMPLE_ROWS = 60


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """A CSV with Python's repr of each float (which round-trips)."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[repr(v) if isinstance(v, float) else v for v in r] for r in rows])
    return path


def cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Breast cancer: 569 rows, 30 numeric features, classes malignant/benign."""
    data = load_breast_cancer()
    y = np.where(data.target == 1, "benign", "malignant")
    return data.data, y, [str(n).replace(" ", "_") for n in data.feature_names]


def diabetes_regression() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's diabetes regression set: 442 rows, 10 features."""
    data = load_diabetes()
    return data.data, data.target, list(data.feature_names)


def iris() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Iris: three classes, 0, 1, 2."""
    data = load_iris()
    return data.data, data.target, ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def wine() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Wine: three classes, 13 numeric features."""
    data = load_wine()
    return data.data, data.target, [str(n).replace("/", "_") for n in data.feature_names]


def sample_csv(tmp_path: Path, x: np.ndarray, names: list[str], y: Any = None) -> Path:
    """The first ``SAMPLE_ROWS`` rows as a sample CSV (with the target column ``y``)."""
    header = [*names, "y"] if y is not None else list(names)
    rows = [
        [float(v) for v in x[i]]
        + ([y[i].item() if hasattr(y[i], "item") else y[i]] if y is not None else [])
        for i in range(min(SAMPLE_ROWS, len(x)))
    ]
    return write_csv(tmp_path / "sample.csv", header, rows)


def shops_frame(n: int = 200) -> pd.DataFrame:
    """A synthetic frame with string columns: shop and weather, plus two numbers."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "visits": rng.integers(0, 50, n).astype(float),
            "shop": rng.choice(["north", "south", "east"], n),
            "price": np.round(rng.uniform(1, 20, n), 2),
            "weather": rng.choice(["rain", "sun"], n),
        }
    )
    score = frame["visits"] / 10 - frame["price"] / 5 + (frame["shop"] == "north") * 2
    frame["bought"] = np.where(score > 0, "yes", "no")
    return frame


def save_skops(model: Any, path: Path) -> Path:
    """Save as skops (the recommended input)."""
    sio.dump(model, path)
    return path


def fit_quietly(model: Any, x: Any, y: Any) -> Any:
    """Fit, ignoring scikit-learn's deprecation notices (SVC(probability=True) in 1.9)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return model.fit(x, y)
