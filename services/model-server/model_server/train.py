"""Train the ModelFleet models deterministically and write versioned bundles.

Usage::

    python -m model_server.train --data data/ --out models/

Writes the model repository ``<out>``: ``<out>/<name>/<version>/model.skops`` and
``manifest.json``, and ``<out>/index.json`` naming each as its model's current version, for:

* ``diabetes``: unpenalised logistic regression on pregnant, glucose, pressure (all 768 rows).
* ``diabetes-gbt``: gradient-boosted trees on all 8 Pima features, stratified 70/30 split.
* ``boston``: ordinary least squares, ``medv ~ crim + zn + indus + chas + nox + rm + age +
  dis + rad + tax`` on rows 1-400, rows 401-506 held out. Column ``b`` is never read.

The output is byte-for-byte reproducible: fixed seeds, single-threaded BLAS, and skops
archives rewritten without timestamps or memory addresses (see ``model_server.skops_archive``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Required, TypedDict

import numpy as np
import scipy
import sklearn
import skops
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from model_server.core.bundle import (
    ARTIFACT_FILE,
    MANIFEST_FILE,
    read_manifest,
    sha256_bytes,
    sha256_file,
)
from model_server.core.manifest import (
    Artifact,
    DataFile,
    JSONValue,
    Manifest,
    NumericFeature,
    Target,
    Task,
    Training,
    value_quartiles,
)
from model_server.repository import (
    VersionEntry,
    add_version,
    bundle_dir,
    load_index,
    locked,
    write_index,
)
from model_server.skops_archive import deterministic_skops

MODEL_VERSION: Final = "1.0.0"
SEED: Final = 20240101
PIMA_FILE: Final = "pima_indians_diabetes.csv"
BOSTON_FILE: Final = "boston_housing.csv"
#: sha256 of the vendored data, from data/PROVENANCE.md: training refuses other data.
DATA_SHA256: Final = {
    PIMA_FILE: "d579e2243fd8bff59098eafc42ac88c80c1e90785d9f53f9285732c3d3d5e591",
    BOSTON_FILE: "24ec814c9b6c5bb1cae0f6d203636413195ade13a34b62920787599f63eefd7e",
}
PIMA_FEATURES: Final = (
    "pregnant", "glucose", "pressure", "triceps", "insulin", "mass", "pedigree", "age"
)  # fmt: skip
BOSTON_FEATURES: Final = ("crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax")
PERCENT_FEATURES: Final = frozenset({"zn", "indus", "age@boston"})
RANGE_RULE: Final = (
    "min is 0 (every input is a non-negative measurement); max is twice the largest value in "
    "the training file, rounded up to one significant digit, except percentages (boston zn, "
    "indus, age), which are capped at 100, and 0/1 factors (boston chas), which accept exactly "
    "0 or 1. Ranges reject impossible or garbled input, not unusual patients or tracts."
)
DESCRIPTIONS: Final = {
    "pregnant": "Number of times pregnant",
    "glucose": "Plasma glucose concentration (2-hour oral glucose tolerance test)",
    "pressure": "Diastolic blood pressure (mm Hg)",
    "triceps": "Triceps skin fold thickness (mm)",
    "insulin": "2-hour serum insulin (mu U/ml)",
    "mass": "Body mass index (weight in kg / (height in m)^2)",
    "pedigree": "Diabetes pedigree function",
    "age@pima": "Age (years)",
    "crim": "Per capita crime rate by town",
    "zn": "Proportion of residential land zoned for lots over 25,000 sq.ft (%)",
    "indus": "Proportion of non-retail business acres per town (%)",
    "chas": "Charles River dummy variable (1 if tract bounds river; 0 otherwise)",
    "nox": "Nitric oxides concentration (parts per 10 million)",
    "rm": "Average number of rooms per dwelling",
    "age@boston": "Proportion of owner-occupied units built prior to 1940 (%)",
    "dis": "Weighted distances to five Boston employment centres",
    "rad": "Index of accessibility to radial highways",
    "tax": "Full-value property-tax rate per USD 10,000",
}
DIABETES_ANSWERS: Final = {"neg": "no", "pos": "yes"}


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Table:
    """A CSV file as columns of strings, plus its sha256."""

    file: str
    sha256: str
    columns: dict[str, list[str]]

    def floats(self, names: Sequence[str]) -> np.ndarray:
        """The named columns as a float64 matrix in the given order."""
        return np.array([[float(v) for v in self.columns[n]] for n in names]).T.copy()


def read_table(data_dir: Path, file: str) -> Table:
    """Read one vendored CSV and check it is the file PROVENANCE.md describes."""
    raw = (data_dir / file).read_bytes()
    digest = sha256_bytes(raw)
    if digest != DATA_SHA256[file]:
        raise SystemExit(f"{file}: sha256 {digest} is not the vendored file ({DATA_SHA256[file]})")
    reader = csv.reader(io.StringIO(raw.decode("utf-8")))
    header = next(reader)
    rows = list(reader)
    return Table(file, digest, {h: [r[i] for r in rows] for i, h in enumerate(header)})


def _nice_ceil(value: float) -> float:
    """Round up to one significant digit: 398 -> 400, 1.742 -> 2, 177.9 -> 200."""
    if value <= 0:
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    return float(math.ceil(value / scale - 1e-9) * scale)


def feature_specs(x: np.ndarray, names: Sequence[str], dataset: str) -> tuple[NumericFeature, ...]:
    """Manifest features with types and valid ranges derived from the training data."""
    specs = []
    for j, name in enumerate(names):
        col = x[:, j]
        integral = bool(np.all(col == np.round(col)))
        key = f"{name}@{dataset}"
        spec = NumericFeature(
            name=name,
            type="integer" if integral else "number",
            description=DESCRIPTIONS.get(key, DESCRIPTIONS.get(name, "")),
            min=0.0,
            max=_nice_ceil(2 * float(col.max())),
            training_min=float(col.min()),
            training_max=float(col.max()),
        )
        if name in PERCENT_FEATURES or key in PERCENT_FEATURES:
            spec = replace(spec, max=100.0)
        if dataset == "boston" and name == "chas":
            spec = replace(spec, type="binary", max=1.0, allowed=(0, 1))
        specs.append(spec)
    return tuple(specs)


# --------------------------------------------------------------------------------------------
# Models


def _r(value: float) -> float:
    """Round a reported metric so manifests stay readable and stable."""
    return round(float(value), 6)


def _libraries() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
    }


class Details(TypedDict, total=False):
    """What a training function knows of the manifest: keyword arguments of ``Manifest``."""

    description: Required[str]
    features: Required[tuple[NumericFeature, ...]]
    threshold: float
    threshold_note: str
    hyperparameters: dict[str, JSONValue]
    training: Required[Training]
    coefficients: dict[str, float]
    metrics: Required[dict[str, float]]


def train_diabetes(pima: Table) -> tuple[Any, Details]:
    """Logistic regression without penalty: ``diabetes ~ pregnant + glucose + pressure``."""
    features = ("pregnant", "glucose", "pressure")
    x = pima.floats(features)
    y = np.array(pima.columns["diabetes"])
    # C=inf is scikit-learn >= 1.8's spelling of penalty=None (the penalty argument is
    # deprecated): a plain maximum-likelihood fit, the same model as R's glm(binomial).
    model = LogisticRegression(C=np.inf, max_iter=10_000, tol=1e-10).fit(x, y)
    proba = model.predict_proba(x)[:, list(model.classes_).index("pos")]
    threshold = 0.5
    return model, {
        "description": "Logistic regression (no penalty) of diabetes on pregnant, glucose and "
        "pressure, fitted on all 768 rows.",
        "features": feature_specs(x, features, "pima"),
        "threshold": threshold,
        "threshold_note": (
            "A row is answered 'yes' when the predicted probability of 'pos' is >= threshold. "
            "The textbook R code compared predict(glm) with 0.5, i.e. the log-odds (type = "
            "'link'), which means p >= 0.622; this server applies the threshold to the "
            "probability, so 0.5 corresponds to log-odds >= 0."
        ),
        "training": Training(rows=len(y), split="none: all rows"),
        "coefficients": {
            "intercept": _r(model.intercept_[0]),
            **{f: _r(c) for f, c in zip(features, model.coef_[0], strict=True)},
        },
        "metrics": {
            "training_accuracy": _r(accuracy_score(y == "pos", proba >= threshold)),
            "training_roc_auc": _r(roc_auc_score(y == "pos", proba)),
        },
    }


def train_diabetes_gbt(pima: Table) -> tuple[Any, Details]:
    """Gradient-boosted trees on all eight Pima features, stratified 70/30 split."""
    x = pima.floats(PIMA_FEATURES)
    y = np.array(pima.columns["diabetes"])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=SEED
    )
    params: dict[str, JSONValue] = {
        "n_estimators": 100,
        "learning_rate": 0.1,
        "max_depth": 3,
        "random_state": SEED,
    }
    model = GradientBoostingClassifier(**params).fit(x_train, y_train)
    threshold = 0.5
    proba = model.predict_proba(x_test)[:, list(model.classes_).index("pos")]
    return model, {
        "description": "Gradient-boosted trees (scikit-learn GradientBoostingClassifier) on all "
        "eight Pima features; stratified 70/30 train/test split.",
        "features": feature_specs(x, PIMA_FEATURES, "pima"),
        "threshold": threshold,
        "threshold_note": "A row is answered 'yes' when the predicted probability of 'pos' is "
        ">= threshold.",
        "hyperparameters": params,
        "training": Training(
            rows=len(y_train),
            test_rows=len(y_test),
            split=f"stratified 70/30, train_test_split(random_state={SEED})",
        ),
        "metrics": {
            "test_accuracy": _r(accuracy_score(y_test == "pos", proba >= threshold)),
            "test_roc_auc": _r(roc_auc_score(y_test == "pos", proba)),
        },
    }


def train_boston(boston: Table) -> tuple[Any, Details]:
    """OLS ``medv ~ crim + zn + indus + chas + nox + rm + age + dis + rad + tax``."""
    x = boston.floats(BOSTON_FEATURES)
    y = np.array([float(v) for v in boston.columns["medv"]])
    model = LinearRegression().fit(x[:400], y[:400])
    pred = model.predict(x[400:])
    return model, {
        "description": "Ordinary least squares of medv on crim, zn, indus, chas, nox, rm, age, "
        "dis, rad and tax, fitted on rows 1-400 (file order); column b is never used.",
        "features": feature_specs(x, BOSTON_FEATURES, "boston"),
        "training": Training(rows=400, test_rows=len(y) - 400, split="rows 1-400 / 401-506"),
        "coefficients": {
            "intercept": _r(model.intercept_),
            **{f: _r(c) for f, c in zip(BOSTON_FEATURES, model.coef_, strict=True)},
        },
        "metrics": {
            "test_r2": _r(r2_score(y[400:], pred)),
            "test_rmse": _r(math.sqrt(mean_squared_error(y[400:], pred))),
            "training_r2": _r(r2_score(y[:400], model.predict(x[:400]))),
        },
    }


@dataclass(frozen=True)
class ModelSpec:
    """How to build one bundle."""

    name: str
    data_file: str
    task: Task
    train: Callable[[Table], tuple[Any, Details]]
    target: Target


SPECS: Final = (
    ModelSpec(
        "diabetes",
        PIMA_FILE,
        "classification",
        train_diabetes,
        Target(name="diabetes", positive_class="pos", answers=DIABETES_ANSWERS),
    ),
    ModelSpec(
        "diabetes-gbt",
        PIMA_FILE,
        "classification",
        train_diabetes_gbt,
        Target(name="diabetes", positive_class="pos", answers=DIABETES_ANSWERS),
    ),
    ModelSpec("boston", BOSTON_FILE, "regression", train_boston, Target(name="medv")),
)


def build_bundle(spec: ModelSpec, table: Table, out_dir: Path) -> Path:
    """Train one model and write its bundle directory; return the directory."""
    model, details = spec.train(table)
    artifact = deterministic_skops(model)
    target = spec.target
    if spec.task == "classification":
        target = replace(target, classes=tuple(str(c) for c in model.classes_))
    else:  # the quartiles of its predictions on its data file, as packaging takes its sample's
        reference = model.predict(table.floats([f.name for f in details["features"]]))
        target = replace(target, value_quartiles=value_quartiles(reference.tolist()))
    manifest = Manifest(
        name=spec.name,
        version=MODEL_VERSION,
        task=spec.task,
        estimator=f"{type(model).__module__}.{type(model).__qualname__}",
        feature_range_rule=RANGE_RULE,
        target=target,
        training_data=DataFile(file=table.file, sha256=table.sha256),
        artifact=Artifact(file=ARTIFACT_FILE, format="skops", sha256=sha256_bytes(artifact)),
        libraries=_libraries(),
        **details,
    )
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    bundle = bundle_dir(out_dir, spec.name, MODEL_VERSION)
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / ARTIFACT_FILE).write_bytes(artifact)
    (bundle / MANIFEST_FILE).write_text(text, encoding="utf-8")
    return bundle


def train_all(data_dir: Path, out_dir: Path) -> list[Path]:
    """Train every model in ``SPECS`` from ``data_dir`` into the repository ``out_dir``, each
    as version ``MODEL_VERSION``, and add them to its index (current when new; the other
    models of the index stay as they are)."""
    tables: dict[str, Table] = {}
    paths = []
    # One BLAS thread: multi-threaded reductions may sum in a different order run to run.
    with threadpool_limits(limits=1):
        for spec in SPECS:
            if spec.data_file not in tables:
                tables[spec.data_file] = read_table(data_dir, spec.data_file)
            paths.append(build_bundle(spec, tables[spec.data_file], out_dir))
    # Added to the index that is there: the models packaged beside the seeds stay.
    with locked(out_dir):
        index = load_index(out_dir)
        for path in paths:
            entry = VersionEntry(
                read_manifest(path).artifact.sha256,
                sha256_file(path / MANIFEST_FILE),
            )
            index = add_version(index, path.parent.name, path.name, entry)
        write_index(out_dir, index)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory with the CSV files")
    parser.add_argument("--out", type=Path, required=True, help="output model directory")
    args = parser.parse_args(argv)
    for path in train_all(args.data, args.out):
        manifest = read_manifest(path)
        print(f"{manifest.name} {manifest.version} {manifest.artifact.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
