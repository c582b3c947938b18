"""The linear fast path of ``Predictor`` gives scikit-learn's results, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_server.core.bundle import Bundle, load_bundle
from model_server.core.manifest import (
    Artifact,
    DataFile,
    Manifest,
    NumericFeature,
    Target,
    Training,
)
from model_server.core.predict import Predictor, linear_parts
from model_server.core.schema import Schema
from sklearn.linear_model import LinearRegression, LogisticRegression


def rows(schema_bundle_dir: Path, n: int, seed: int) -> np.ndarray:
    """``n`` random rows inside the manifest ranges (categorical columns from their set)."""
    schema = load_bundle(schema_bundle_dir).schema
    rng = np.random.default_rng(seed)
    x = rng.uniform(schema.lows, schema.highs, size=(n, schema.width))
    for c, allowed in schema.categorical:
        x[:, c] = rng.choice(allowed, size=n)
    # Some integral values too, as clients send them.
    x[: n // 2] = np.round(x[: n // 2])
    return np.ascontiguousarray(x)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 10_000])
def test_logistic_regression_probabilities_equal_predict_proba(model_dir: Path, n: int) -> None:
    bundle = load_bundle(model_dir / "diabetes" / "1.0.0")
    predictor = Predictor(bundle)
    assert linear_parts(bundle.model) is not None  # the fast path is the one under test
    x = rows(model_dir / "diabetes" / "1.0.0", n, seed=n)
    positive = list(bundle.model.classes_).index("pos")
    expected = bundle.model.predict_proba(x)[:, positive]
    np.testing.assert_array_equal(predictor.positive_proba(x), expected)
    result = predictor.predict(x)
    assert result.probabilities == expected.tolist()
    assert result.predictions == ["yes" if p >= 0.5 else "no" for p in expected]


@pytest.mark.parametrize("n", [1, 3, 1000, 10_000])
def test_linear_regression_values_equal_predict(model_dir: Path, n: int) -> None:
    bundle = load_bundle(model_dir / "boston" / "1.0.0")
    predictor = Predictor(bundle)
    assert linear_parts(bundle.model) is not None
    x = rows(model_dir / "boston" / "1.0.0", n, seed=100 + n)
    expected = bundle.model.predict(x)
    np.testing.assert_array_equal(predictor.values(x), expected)
    assert predictor.predict(x).predictions == expected.tolist()


def test_training_rows_give_sklearn_answers(model_dir: Path) -> None:
    from unit_helpers import DATA_DIR

    raw = np.genfromtxt(DATA_DIR / "pima_indians_diabetes.csv", delimiter=",", skip_header=1)
    x = np.ascontiguousarray(raw[:, :3])
    bundle = load_bundle(model_dir / "diabetes" / "1.0.0")
    expected = bundle.model.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(Predictor(bundle).positive_proba(x), expected)
    # One row at a time, as single-row requests arrive.
    for row in x[:50]:
        single = Predictor(bundle).positive_proba(row.reshape(1, -1))
        np.testing.assert_array_equal(single, bundle.model.predict_proba(row.reshape(1, -1))[:, 1])


def test_gradient_boosting_keeps_the_sklearn_path(model_dir: Path) -> None:
    bundle = load_bundle(model_dir / "diabetes-gbt" / "1.0.0")
    assert linear_parts(bundle.model) is None
    x = rows(model_dir / "diabetes-gbt" / "1.0.0", 100, seed=1)
    np.testing.assert_array_equal(
        Predictor(bundle).positive_proba(x), bundle.model.predict_proba(x)[:, 1]
    )


def classifier_bundle(
    model: LogisticRegression,
    names: list[str],
    target: Target,
    threshold: float | None = None,
    high: float = 1e9,
) -> Bundle:
    """A bundle of a fitted logistic regression over numeric features ``names`` (0 to ``high``
    with a threshold, else -``high`` to ``high``), as if packaged."""
    low = 0 if threshold is not None else -high
    features = tuple(
        NumericFeature(name=n, type="number", description="", min=low, max=high) for n in names
    )
    manifest = Manifest(
        name="t",
        version="1",
        task="classification",
        description="",
        estimator="sklearn.linear_model._logistic.LogisticRegression",
        features=features,
        target=target,
        threshold=threshold,
        training=Training(rows=6, split="none"),
        metrics={},
        training_data=DataFile(file="t.csv", sha256="0" * 64),
        artifact=Artifact(file="model.skops", format="skops", sha256="0" * 64),
        libraries={"scikit-learn": "1.9.1"},
    )
    return Bundle(manifest, model, Schema.from_features(list(features)), "0" * 64, Path("t"))


def test_positive_class_first_is_handled() -> None:
    """A classifier whose positive class is ``classes_[0]`` answers that column: ``1 - p``."""
    x = np.array([[0.0], [1.0], [2.0], [3.0], [1.5], [2.5]])
    model = LogisticRegression().fit(x, ["yes", "yes", "no", "no", "yes", "no"])
    assert list(model.classes_) == ["no", "yes"]
    target = Target(
        name="y", positive_class="no", answers={"no": "N", "yes": "Y"}, classes=("no", "yes")
    )
    predictor = Predictor(classifier_bundle(model, ["v"], target, threshold=0.5, high=10))
    expected = model.predict_proba(x)[:, 0]
    np.testing.assert_array_equal(predictor.positive_proba(x), expected)
    assert predictor.predict(x).predictions == ["N" if p >= 0.5 else "Y" for p in expected]


def test_only_exact_linear_types_take_the_fast_path() -> None:
    class Custom(LinearRegression):
        pass

    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    assert linear_parts(Custom().fit(x, [1.0, 2.0, 3.0])) is None
    assert linear_parts(LinearRegression().fit(x, [[1.0, 2.0]] * 3)) is None  # two outputs
    multi = LogisticRegression().fit(np.arange(6.0).reshape(-1, 1), [0, 0, 1, 1, 2, 2])
    assert linear_parts(multi) is None


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_a_packaged_binary_logistic_regression_answers_as_its_predict_and_predict_proba(
    n: int,
) -> None:
    """Without a threshold (a packaged model): classes from ``predict``, per-class
    probabilities from ``predict_proba``, bit for bit as scikit-learn gives them for the named
    DataFrame the server would otherwise pass it (``model_input``, the rows as they are). A
    DataFrame laid out column by column is summed in another order by BLAS: its
    probabilities may differ in the last bits only."""
    import pandas as pd

    rng = np.random.default_rng(n)
    names = ["a", "b"]
    fit_x = pd.DataFrame(rng.normal(size=(200, 2)), columns=names)
    model = LogisticRegression().fit(fit_x, np.where(fit_x["a"] + fit_x["b"] > 0, "up", "down"))
    target = Target(name="y", positive_class=None, answers=None, classes=("down", "up"))
    predictor = Predictor(classifier_bundle(model, names, target))
    assert linear_parts(model) is not None
    x = rng.normal(scale=3, size=(n, 2))
    x = np.ascontiguousarray(x)
    frame = predictor.model_input(x)
    assert isinstance(frame, pd.DataFrame)
    result = predictor.predict(x)
    assert result.predictions == model.predict(frame).tolist()
    assert result.class_probabilities == model.predict_proba(frame).tolist()
    assert result.labels == ("down", "up")
    by_column = pd.DataFrame(np.asfortranarray(x), columns=names)
    assert result.predictions == model.predict(by_column).tolist()
    np.testing.assert_allclose(
        result.class_probabilities, model.predict_proba(by_column), rtol=1e-12, atol=0
    )
