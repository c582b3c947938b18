"""Bundles of estimators the seed models are not: fitted here on data scikit-learn ships and on a
synthetic frame with string columns, written as the server reads them (``core.manifest.Manifest``
plus a skops artifact), for ``test_generic_models.py``.

Each ``Case`` keeps the fitted estimator and the rows it was fitted on, so a test can ask the
estimator itself what the answer must be.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from model_server.core.bundle import ARTIFACT_FILE, MANIFEST_FILE, sha256_bytes
from model_server.core.manifest import (
    Artifact,
    CategoricalFeature,
    DataFile,
    Feature,
    GoldenRow,
    Manifest,
    NumericFeature,
    Target,
    Training,
)
from model_server.repository import VersionEntry, add_version, load_index, locked, write_index
from model_server.skops_archive import deterministic_skops
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

COLORS = ("red", "green", "blue", "light blue", "gris, foncé")  # a space, a comma, non-ASCII
SIZES = ("S", "M", "L")


@dataclass(frozen=True)
class Case:
    """A fitted estimator, the frame it was fitted on, and how its bundle answers.

    ``named`` says whether it was fitted on the frame (named columns) or on its values.
    ``answers`` maps class labels (as strings) to the labels answered, as the seed's pos/neg.
    """

    name: str
    estimator: Any
    frame: pd.DataFrame
    y: np.ndarray
    task: str
    named: bool
    answers: dict[str, str] | None = None

    def expected(self, rows: pd.DataFrame) -> list[Any]:
        """What the server must answer for ``rows``: the estimator's own ``predict``."""
        out = self.estimator.predict(rows if self.named else rows.to_numpy(np.float64)).tolist()
        if self.task == "regression":
            return out
        return [self.answer(c) for c in out]

    def proba(self, rows: pd.DataFrame) -> list[list[float]]:
        """The estimator's own ``predict_proba`` for ``rows``."""
        x = rows if self.named else rows.to_numpy(np.float64)
        return self.estimator.predict_proba(x).tolist()  # type: ignore[no-any-return]

    def answer(self, label: Any) -> str:
        return self.answers[str(label)] if self.answers else str(label)

    @property
    def labels(self) -> list[str]:
        """Answer labels in the estimator's ``classes_`` order."""
        return [self.answer(c) for c in self.estimator.classes_.tolist()]


def _frame(bunch: Any, names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=names)


def shop_frame(n: int = 240, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic frame with two string columns and two numbers, and a 3-class target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "color": rng.choice(COLORS, n),
            "price": rng.uniform(1, 100, n).round(2),
            "size": rng.choice(SIZES, n),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )
    score = frame["price"] / 25 + (frame["color"] == "red") * 2 - (frame["size"] == "S") * 1.5
    y = np.where(score > 3, "high", np.where(score > 1.5, "mid", "low"))
    return frame, y


def cases() -> list[Case]:
    """Every supported kind of estimator, fitted (about a second in all)."""
    iris = load_iris()
    iris_x = _frame(iris, ["sepal_length", "sepal_width", "petal_length", "petal_width"])
    iris_y = iris.target_names[iris.target]
    wine = load_wine()
    wine_x = _frame(wine, [n.replace("/", "_") for n in wine.feature_names])
    cancer = load_breast_cancer()
    cancer_x = _frame(cancer, [f"f{i}" for i in range(cancer.data.shape[1])])
    diabetes = load_diabetes()
    diabetes_x = _frame(diabetes, list(diabetes.feature_names))
    shop_x, shop_y = shop_frame()
    prep = ColumnTransformer(
        [
            ("strings", OneHotEncoder(handle_unknown="ignore"), ["color", "size"]),
            ("numbers", StandardScaler(), ["price", "rating"]),
        ]
    )
    shop = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))])
    shop_bin = make_pipeline(
        ColumnTransformer(
            [("strings", OneHotEncoder(sparse_output=False), ["color", "size"])],
            remainder=MinMaxScaler(),
        ),
        HistGradientBoostingClassifier(max_iter=20, random_state=0),
    )
    shop_price = make_pipeline(
        ColumnTransformer(
            [
                (
                    "strings",
                    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                    ["color", "size"],
                ),
            ],
            remainder="passthrough",
        ),
        Ridge(),
    )
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(algorithm="kd_tree"))
    return [
        Case(
            "iris-lr",
            LogisticRegression(max_iter=1000).fit(iris_x.to_numpy(), iris_y),
            iris_x,
            iris_y,
            "classification",
            named=False,
        ),
        Case("iris-knn", knn.fit(iris_x, iris_y), iris_x, iris_y, "classification", named=True),
        Case(
            "wine-forest",
            RandomForestClassifier(n_estimators=8, random_state=0).fit(wine_x, wine.target),
            wine_x,
            wine.target,
            "classification",
            named=True,
        ),
        Case(
            "cancer-hgb",
            HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(
                cancer_x.to_numpy(), cancer.target
            ),
            cancer_x,
            cancer.target,
            "classification",
            named=False,
            answers={"0": "malignant", "1": "benign"},
        ),
        Case(
            "cancer-svc",
            _svc(cancer_x, cancer.target),
            cancer_x,
            cancer.target,
            "classification",
            named=True,
        ),
        Case(
            "diabetes-tree",
            DecisionTreeRegressor(max_depth=5, random_state=0).fit(diabetes_x, diabetes.target),
            diabetes_x,
            diabetes.target,
            "regression",
            named=True,
        ),
        Case(
            "diabetes-hgb",
            HistGradientBoostingRegressor(max_iter=20).fit(diabetes_x.to_numpy(), diabetes.target),
            diabetes_x,
            diabetes.target,
            "regression",
            named=False,
        ),
        Case("shop", shop.fit(shop_x, shop_y), shop_x, shop_y, "classification", named=True),
        Case(
            "shop-binary",
            shop_bin.fit(shop_x, shop_y == "high"),
            shop_x,
            shop_y == "high",
            "classification",
            named=True,
            answers={"False": "no", "True": "yes"},
        ),
        Case(
            "shop-price",
            shop_price.fit(shop_x.drop(columns="price"), shop_x["price"]),
            shop_x.drop(columns="price"),
            shop_x["price"].to_numpy(),
            "regression",
            named=True,
        ),
    ]


def _svc(x: pd.DataFrame, y: np.ndarray) -> Any:
    """``SVC(probability=True)`` in a pipeline, fitted: the issue names it; scikit-learn 1.9
    deprecates the parameter (for ``CalibratedClassifierCV``) with a FutureWarning at fit
    time, which the tests would turn into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(x, y)


def features(frame: pd.DataFrame) -> tuple[Feature, ...]:
    """The manifest features of ``frame``: strings with their categories, numbers with their
    range widened by a tenth on each side."""
    out: list[Feature] = []
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind in "fiu":
            lo, hi = float(col.min()), float(col.max())
            margin = (hi - lo) / 10
            out.append(
                NumericFeature(
                    name=str(name), type="number", description="", min=lo - margin, max=hi + margin
                )
            )
        else:
            out.append(
                CategoricalFeature(name=str(name), description="", allowed=tuple(sorted(set(col))))
            )
    return tuple(out)


def golden_rows(case: Case, n: int = 3) -> tuple[GoldenRow, ...]:
    """``n`` rows of the case's frame with the estimator's own answers and probabilities."""
    rows = case.frame.iloc[np.linspace(0, len(case.frame) - 1, n).astype(int)]
    answers = case.expected(rows)
    proba = case.proba(rows) if hasattr(case.estimator, "predict_proba") else None
    classes = [str(c) for c in case.estimator.classes_] if case.task == "classification" else []
    return tuple(
        GoldenRow(
            inputs={k: v if isinstance(v, str) else float(v) for k, v in record.items()},
            prediction=answers[i],
            probabilities=None if proba is None else dict(zip(classes, proba[i], strict=True)),
        )
        for i, record in enumerate(rows.to_dict("records"))
    )


def write_bundle(
    case: Case,
    out_dir: Path,
    golden: tuple[GoldenRow, ...] | None = None,
    artifact_of: Any = None,
    **manifest: Any,
) -> Path:
    """Write ``case`` as version 1.0.0 in the model repository ``out_dir`` (bundle directory and
    index entry), as the packager would, with its
    golden rows (``golden_rows(case)`` unless given; ``()`` for none). ``artifact_of`` puts
    another estimator in the artifact (a swapped bundle); ``manifest`` overrides fields."""
    artifact = deterministic_skops(case.estimator if artifact_of is None else artifact_of)
    classifier = case.task == "classification"
    classes = tuple(str(c) for c in case.estimator.classes_) if classifier else None
    if golden is None:
        golden = golden_rows(case)
    manifest = Manifest(
        name=case.name,
        version="1.0.0",
        task="classification" if classifier else "regression",
        description=f"{case.name}, fitted by the unit tests",
        estimator=f"{type(case.estimator).__module__}.{type(case.estimator).__qualname__}",
        features=features(case.frame),
        target=manifest.pop("target", Target(name="y", answers=case.answers, classes=classes)),
        training=Training(rows=len(case.frame), split="none"),
        metrics={},
        training_data=DataFile(file="sample.csv", sha256="0" * 64),
        artifact=Artifact(file=ARTIFACT_FILE, format="skops", sha256=sha256_bytes(artifact)),
        libraries={"scikit-learn": sklearn.__version__},
        golden_rows=golden or None,
        **manifest,
    )
    bundle = out_dir / case.name / manifest.version
    bundle.mkdir(parents=True)
    (bundle / ARTIFACT_FILE).write_bytes(artifact)
    text = json.dumps(manifest.to_dict(), indent=2).encode()
    (bundle / MANIFEST_FILE).write_bytes(text)
    with locked(out_dir):
        entry = VersionEntry(sha256_bytes(artifact), sha256_bytes(text))
        write_index(out_dir, add_version(load_index(out_dir), case.name, manifest.version, entry))
    return bundle
