"""What the models say about themselves: features (from a bundle's manifest, or from a running
server's ``GET /models``), the training file, and rows of the vendored data for requests.

Nothing else in the benchmarks names a feature: a model with other features is measured the
same way.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError
from bench.procs import urlopen

MODELS = ROOT / "models"
DATA = ROOT / "data"


def manifest(name: str, model_dir: Path = MODELS) -> dict[str, Any]:
    """The manifest of the current version of a model in the repository ``model_dir``
    (``<name>/<version>/manifest.json``, the version from ``index.json``)."""
    try:
        index = json.loads((model_dir / "index.json").read_text())
        version = index["models"][name]["current"]
        return dict(json.loads((model_dir / name / version / "manifest.json").read_text()))
    except (FileNotFoundError, KeyError):
        raise BenchError(f"no model {name!r} in the repository {model_dir}") from None


def _names(features: Sequence[Any]) -> tuple[str, ...]:
    """Feature names from a feature list of names or of ``{"name": ...}`` objects."""
    return tuple(f if isinstance(f, str) else str(f["name"]) for f in features)


def features(name: str, model_dir: Path = MODELS) -> tuple[str, ...]:
    """The model's features, in order, from its bundle's manifest."""
    return _names(manifest(name, model_dir)["features"])


def training_file(name: str, model_dir: Path = MODELS) -> str:
    """The vendored CSV the model was trained on (a file name in data/)."""
    return str(manifest(name, model_dir)["training_data"]["file"])


def _listing(base_url: str, timeout: float) -> dict[str, Any]:
    with urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as r:
        return dict(json.loads(r.read()))


def served_features(base_url: str, timeout: float = 10) -> dict[str, tuple[str, ...]]:
    """Every model a running server (or load balancer) serves, with its features, from
    ``GET /models``."""
    return {m["name"]: _names(m["features"]) for m in _listing(base_url, timeout)["models"]}


def plumber_path(base_url: str, values: Sequence[Any] = (1, 3, 1), timeout: float = 10) -> str:
    """``/predict_data?...``: one row of ``values`` for the server's default model, its features
    named as ``GET /models`` lists them."""
    listing = _listing(base_url, timeout)
    default = next(m for m in listing["models"] if m["name"] == listing["default_model"])
    return "/predict_data?" + query(record(_names(default["features"]), values))


def record(feature_names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """One row as a JSON record; the values must be as many as the features."""
    if len(feature_names) != len(values):
        raise BenchError(
            f"{len(values)} values for {len(feature_names)} features ({', '.join(feature_names)})"
        )
    return dict(zip(feature_names, values, strict=True))


def query(row: dict[str, Any]) -> str:
    """A record as the plumber query string (``a=1&b=3``), in the record's order."""
    return "&".join(f"{k}={v}" for k, v in row.items())


def number(text: str) -> float | int:
    """A CSV cell as the number it writes: ``6`` is an int, ``6.0`` and ``0.5`` are floats."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def data_rows(
    file: str, feature_names: Sequence[str], n: int, data_dir: Path = DATA
) -> list[dict[str, float | int]]:
    """``n`` rows of a vendored CSV (cycled), restricted to the features, as numbers."""
    with (data_dir / file).open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    return [{k: number(table[i % len(table)][k]) for k in feature_names} for i in range(n)]
