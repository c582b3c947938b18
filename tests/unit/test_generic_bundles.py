"""``load_bundle`` on bundles of generic estimators: the allow-list is exactly what the supported
estimators need, string features and multiclass targets load, and what cannot be served right
is refused with the reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from generic_bundles import Case, cases, golden_rows, shop_frame, write_bundle
from model_server.core.bundle import TRUSTED_TYPES, BundleError, load_bundle
from model_server.core.golden import GoldenRowMismatch
from model_server.core.manifest import Target
from model_server.core.predict import Predictor
from model_server.skops_archive import deterministic_skops
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neighbors import KNeighborsClassifier

#: What the generic estimators need beyond what the seed models needed.
FOR_GENERIC_ESTIMATORS = {
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
}


def test_the_allow_list_is_exactly_what_the_supported_estimators_need() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    ball = KNeighborsClassifier(algorithm="ball_tree").fit(x, y)
    needed: set[str] = set()
    for estimator in [c.estimator for c in cases()] + [ball]:
        needed |= set(sio.get_untrusted_types(data=deterministic_skops(estimator)))
    # Trees (decision trees, forests) need the seed's gradient boosting's Tree too.
    assert needed == FOR_GENERIC_ESTIMATORS | {"sklearn.tree._tree.Tree"}
    assert set(TRUSTED_TYPES) >= FOR_GENERIC_ESTIMATORS


def test_string_features_and_multiclass_targets_load(tmp_path: Path) -> None:
    shop = next(c for c in cases() if c.name == "shop")
    bundle = load_bundle(write_bundle(shop, tmp_path))
    assert [f.name for _, f, _ in bundle.schema.strings] == ["color", "size"]
    assert bundle.manifest.target.classes == ("high", "low", "mid")


def test_a_callable_in_the_artifact_is_refused_by_name(tmp_path: Path) -> None:
    frame, y = shop_frame()
    frame = frame.astype({"color": "category", "size": "category"})
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    case = Case("native", model.fit(frame, y), frame, y, "classification", named=True)
    with pytest.raises(BundleError, match=r"untrusted types \['functools.partial'"):
        load_bundle(write_bundle(case, tmp_path))


def test_columns_in_another_order_than_fitted_are_refused(tmp_path: Path) -> None:
    shop = next(c for c in cases() if c.name == "shop")
    path = write_bundle(shop, tmp_path, golden=())
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["features"].reverse()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="fitted on the columns"):
        load_bundle(path)


def test_a_classifier_without_predict_proba_answers_labels_only(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.svm import LinearSVC

    iris = load_iris(as_frame=True)
    frame = iris.data.set_axis(["a", "b", "c", "d"], axis=1)
    y = np.asarray(iris.target_names)[iris.target]
    case = Case("iris-svm", LinearSVC().fit(frame, y), frame, y, "classification", named=True)
    predictor = Predictor(load_bundle(write_bundle(case, tmp_path)))
    result = predictor.predict(frame.to_numpy()[:3])
    assert (result.predictions, result.class_probabilities, result.per_class()) == (
        case.expected(frame[:3]),
        None,
        None,
    )


def test_every_supported_estimator_reproduces_its_golden_rows_when_loaded(tmp_path: Path) -> None:
    for case in cases():
        predictor = Predictor(load_bundle(write_bundle(case, tmp_path)))
        assert predictor.bundle.manifest.golden_rows


def test_an_artifact_that_is_not_the_manifests_model_is_refused_at_load(tmp_path: Path) -> None:
    iris = {c.name: c for c in cases()}
    path = write_bundle(iris["iris-knn"], tmp_path, artifact_of=iris["iris-lr"].estimator)
    with pytest.raises(GoldenRowMismatch, match=r"golden_rows\[\d\]: the model"):
        Predictor(load_bundle(path))


def test_golden_rows_of_a_thresholded_model_compare_the_positive_class(tmp_path: Path) -> None:
    case = next(c for c in cases() if c.name == "shop-binary")
    golden = golden_rows(case)
    target = Target(
        name="y", positive_class="True", answers=case.answers, classes=("False", "True")
    )
    Predictor(load_bundle(write_bundle(case, tmp_path / "a", golden, threshold=0.5, target=target)))
    p = dict(golden[0].probabilities or {})
    p.update({"False": p["False"] - 0.25, "True": p["True"] + 0.25})
    bad = (replace(golden[0], probabilities=p), *golden[1:])
    with pytest.raises(GoldenRowMismatch, match="probabilities"):
        Predictor(
            load_bundle(write_bundle(case, tmp_path / "b", bad, threshold=0.5, target=target))
        )
