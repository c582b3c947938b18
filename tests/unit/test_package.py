"""Packaging your own estimator (issue 10): what is derived, verified and written.

Specification: ``package(estimator, sample, name, version)`` (and ``make model-package``) turns a
fitted scikit-learn estimator into ``<repo>/<name>/<version>/`` with a manifest derived from the
estimator and the sample, verified by the server's own loader, parser and predictor, and adds it
to the index. Estimators the server cannot serve yet are ``xfail(strict=True)``: they start
failing, as they should, when the serving side (branch generic-models) lands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from model_server.core.bundle import sha256_file
from model_server.core.manifest import CategoricalFeature, Manifest, NumericFeature
from model_server.package import Packaged, package
from model_server.package_derive import GOLDEN_ROWS
from model_server.repository import load_index
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeRegressor

from tests.unit.package_helpers import (
    SAMPLE_ROWS,
    cancer,
    diabetes_regression,
    fit_quietly,
    iris,
    sample_csv,
    save_skops,
    shops_frame,
    wine,
)

NEEDS_SERVING = pytest.mark.xfail(reason="needs generic-models (issue 10 serving)", strict=True)


def manifest_of(done: Packaged) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((done.path / "manifest.json").read_text())
    return data


def binary(tmp_path: Path, model: Any, **options: Any) -> Packaged:
    x, y, names = cancer()
    fit_quietly(model, x, y)
    sample = sample_csv(tmp_path, x, names, y)
    est = save_skops(model, tmp_path / "model.skops")
    return package(
        est, sample, "cancer", "1.0.0", repository=tmp_path / "repo", target="y", **options
    )


# --------------------------------------------------------------------------------------------
# What works with today's server: numeric features, regression, binary with a threshold


@pytest.mark.parametrize(
    "model",
    [LinearRegression(), Ridge(alpha=0.5), DecisionTreeRegressor(max_depth=4, random_state=0)],
    ids=["linear", "ridge", "tree"],
)
def test_a_regressor_is_packaged_with_everything_derived(tmp_path: Path, model: Any) -> None:
    x, y, names = diabetes_regression()
    model.fit(x, y)
    sample = sample_csv(tmp_path, x, names, y)
    done = package(
        save_skops(model, tmp_path / "m.skops"),
        sample,
        "sugar",
        "1",
        repository=tmp_path / "r",
        target="y",
    )
    m = done.manifest
    assert done.path == tmp_path / "r" / "sugar" / "1"
    assert m.task == "regression"
    assert m.estimator == f"{type(model).__module__}.{type(model).__qualname__}"
    # No feature names in the estimator: the sample's columns, in order, without the target.
    assert m.feature_names == tuple(names)
    assert [g.prediction for g in m.golden_rows or ()] == model.predict(x[:GOLDEN_ROWS]).tolist()
    # The quartiles of its own predictions on the sample: the reference of the rollout gates'
    # prediction mix for a regressor.
    reference = np.percentile(model.predict(x[:SAMPLE_ROWS]), [25, 50, 75])
    assert m.target.value_quartiles == pytest.approx(reference, abs=1e-6)


def test_the_target_column_is_not_a_feature_and_scores_the_sample(tmp_path: Path) -> None:
    x, y, names = diabetes_regression()
    model = LinearRegression().fit(x, y)
    sample = sample_csv(tmp_path, x, names, y)
    done = package(model, sample, "sugar", "1", repository=tmp_path / "r", target="y")
    m = done.manifest
    assert m.feature_names == tuple(names)
    assert m.target.name == "y" and m.target.classes is None and m.threshold is None
    assert set(m.metrics) == {"sample_r2"}
    assert m.training_data.file == "sample.csv"
    assert m.training_data.sha256 == sha256_file(sample)
    assert m.artifact.sha256 == sha256_file(done.path / "model.skops")
    assert m.libraries["scikit-learn"] and m.libraries["skops"] and m.libraries["numpy"]
    assert m.manifest_version == 2 and m.trusted_types is None
    assert m.golden_rows is not None and len(m.golden_rows) == GOLDEN_ROWS
    first = m.golden_rows[0]
    assert list(first.inputs.values()) == [float(v) for v in x[0]]
    assert first.prediction == model.predict(x[:1])[0]
    assert Manifest.from_dict(manifest_of(done)) == m


def test_numeric_ranges_are_the_sample_widened_by_the_stated_margin(tmp_path: Path) -> None:
    x, _, _ = cancer()
    done = binary(tmp_path, make_pipeline(StandardScaler(), LogisticRegression()), threshold=0.5)
    radius = done.manifest.features[0]
    assert isinstance(radius, NumericFeature)
    lo, hi = x[:SAMPLE_ROWS, 0].min(), x[:SAMPLE_ROWS, 0].max()
    assert (radius.training_min, radius.training_max) == (lo, hi)
    # 0.5 of the span on each side, rounded outwards to two digits of that padding (0.1 here).
    pad = 0.5 * (hi - lo)
    assert lo - pad - 0.1 <= radius.min <= lo - pad
    assert hi + pad <= radius.max <= hi + pad + 0.1
    assert (radius.min, radius.max) == (round(radius.min, 1), round(radius.max, 1))
    assert "widened by 0.5 of its span" in (done.manifest.feature_range_rule or "")


def test_ranges_and_margin_can_be_set(tmp_path: Path) -> None:
    done = binary(
        tmp_path,
        make_pipeline(StandardScaler(), LogisticRegression()),
        threshold=0.5,
        margin=0,
        ranges={"mean_texture": (0, 100)},
    )
    radius, texture = done.manifest.features[:2]
    assert isinstance(radius, NumericFeature) and isinstance(texture, NumericFeature)
    assert (radius.min, radius.max) == (radius.training_min, radius.training_max)
    assert (texture.min, texture.max) == (0, 100)


@pytest.mark.parametrize(
    "model",
    [
        make_pipeline(StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=10, random_state=0),
        make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)),
        make_pipeline(StandardScaler(), KNeighborsClassifier()),
    ],
    ids=["logistic", "forest", "svc", "knn"],
)
def test_a_binary_classifier_with_a_threshold_is_packaged(tmp_path: Path, model: Any) -> None:
    done = binary(tmp_path, model, threshold=0.5, answers={"malignant": "yes", "benign": "no"})
    m = done.manifest
    assert m.task == "classification"
    assert m.target.classes == ("benign", "malignant")
    assert m.target.positive_class == "malignant"  # the second class unless POSITIVE says
    assert m.threshold == 0.5 and "operator" in (m.threshold_note or "")
    golden = m.golden_rows or ()
    assert {g.prediction for g in golden} <= {"yes", "no"}
    for g in golden:
        assert list(g.probabilities or {}) == ["benign", "malignant"]
    assert done.current == "1.0.0"
    assert load_index(tmp_path / "repo").models["cancer"].versions["1.0.0"].sha256 == (
        m.artifact.sha256
    )


def test_an_estimator_fitted_on_a_dataframe_keeps_its_column_order(tmp_path: Path) -> None:
    frame = shops_frame()[["visits", "price", "bought"]]
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame[["price", "visits"]], frame["bought"])
    sample = tmp_path / "s.csv"
    frame.head(40).to_csv(sample, index=False)  # visits before price, and the target
    done = package(model, sample, "shop", "1", repository=tmp_path / "r", threshold=0.5)
    assert done.manifest.feature_names == ("price", "visits")
    assert "pandas" in done.manifest.libraries


def test_in_a_notebook_the_sample_may_be_a_dataframe(tmp_path: Path) -> None:
    frame = shops_frame()[["visits", "price", "bought"]]
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(frame[["visits", "price"]], frame["bought"])
    sample = frame.head(25)
    done = package(model, sample, "shop", "1", repository=tmp_path / "r", threshold=0.5)
    assert done.manifest.training_data.file == "sample.csv"
    assert done.verified_rows == 25
    golden = done.manifest.golden_rows or ()
    assert golden[0].inputs == {
        "visits": sample["visits"].iloc[0],
        "price": sample["price"].iloc[0],
    }


def test_a_pickle_is_converted_to_skops_with_a_warning(tmp_path: Path) -> None:
    x, y, names = diabetes_regression()
    joblib.dump(Ridge().fit(x, y), tmp_path / "m.joblib")
    lines: list[str] = []
    done = package(
        tmp_path / "m.joblib",
        sample_csv(tmp_path, x, names),
        "sugar",
        "1",
        repository=tmp_path / "r",
        trust_pickle=True,
        warn=lines.append,
    )
    assert lines and "pickle runs any code" in lines[0]
    assert sorted(p.name for p in done.path.iterdir()) == ["manifest.json", "model.skops"]


def test_a_new_version_is_added_but_does_not_become_current(tmp_path: Path) -> None:
    x, y, names = diabetes_regression()
    sample = sample_csv(tmp_path, x, names)
    repo = tmp_path / "r"
    package(Ridge().fit(x, y), sample, "sugar", "1", repository=repo)
    done = package(Ridge(alpha=2).fit(x, y), sample, "sugar", "2", repository=repo)
    assert done.current == "1"
    assert list(load_index(repo).models["sugar"].versions) == ["1", "2"]
    replaced = package(Ridge(alpha=3).fit(x, y), sample, "sugar", "2", repository=repo, force=True)
    assert replaced.manifest.hyperparameters is not None
    assert replaced.manifest.hyperparameters["alpha"] == 3
    assert sorted(p.name for p in repo.iterdir()) == [".index.lock", "index.json", "sugar"]


# --------------------------------------------------------------------------------------------
# Generic estimators (issue 10's serving side)


def test_a_binary_classifier_without_a_threshold_answers_its_own_predict(tmp_path: Path) -> None:
    done = binary(tmp_path, make_pipeline(StandardScaler(), LogisticRegression()))
    assert done.manifest.threshold is None


def test_histogram_gradient_boosting_is_packaged(tmp_path: Path) -> None:
    done = binary(tmp_path, HistGradientBoostingClassifier(max_iter=20), threshold=0.5)
    assert done.manifest.estimator.endswith("HistGradientBoostingClassifier")


def test_a_trusted_type_is_recorded_and_the_bundle_loads(tmp_path: Path) -> None:
    """Types beyond the allow-list load only because the manifest records them as trusted."""
    from model_server.core.bundle import load_bundle

    trusted = (
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    )
    model = CalibratedClassifierCV(LinearSVC(max_iter=200), ensemble=False)
    done = binary(tmp_path, model, threshold=0.5, trusted_types=trusted)
    assert done.manifest.trusted_types == trusted
    assert load_bundle(done.path).manifest.trusted_types == trusted


@pytest.mark.parametrize("dataset", [iris, wine])
def test_a_multiclass_classifier_answers_class_labels(tmp_path: Path, dataset: Any) -> None:
    x, y, names = dataset()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    done = package(
        model, sample_csv(tmp_path, x[::3], names, y[::3]), "iris", "1",
        repository=tmp_path / "r", target="y",
    )  # fmt: skip
    assert done.manifest.target.classes == ("0", "1", "2")


def test_a_pipeline_with_a_string_column_is_packaged(tmp_path: Path) -> None:
    frame = shops_frame()
    features = ["visits", "shop", "price", "weather"]
    model = make_pipeline(
        ColumnTransformer(
            [
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["shop", "weather"]),
                ("num", StandardScaler(), ["visits", "price"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame[features], frame["bought"])
    sample = tmp_path / "s.csv"
    frame.head(30).to_csv(sample, index=False)
    done = package(model, sample, "shops", "1", repository=tmp_path / "r", target="bought")
    shop = done.manifest.features[1]
    assert isinstance(shop, CategoricalFeature)
    assert shop.allowed == ("east", "north", "south")  # the encoder's categories


def test_string_features_take_the_encoders_categories(tmp_path: Path) -> None:
    """The derivation itself, without serving: categories come from the fitted encoder."""
    from model_server.package_derive import derive_features, encoder_categories, read_sample

    frame = shops_frame()
    model = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["shop", "weather"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame[["visits", "shop", "price", "weather"]], frame["bought"])
    sample = read_sample("s.csv", frame.head(5).to_csv(index=False).encode())
    cats = encoder_categories(model)
    assert {k: list(v) for k, v in cats.items()} == {
        "shop": ["east", "north", "south"],
        "weather": ["rain", "sun"],
    }
    features = derive_features(["visits", "shop", "price", "weather"], sample, cats, 0.5, {})
    kinds = [type(f).__name__ for f in features]
    assert kinds == ["NumericFeature", "CategoricalFeature", "NumericFeature", "CategoricalFeature"]
    assert np.all([f.name for f in features] == np.array(["visits", "shop", "price", "weather"]))
