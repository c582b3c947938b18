"""A regressor's answers counted by quartile bin, for the rollout gates' prediction mix (#12).

Specification: a regression bundle's manifest may carry ``target.value_quartiles``, the 25th,
50th and 75th percentiles of the model's own predictions on the data it was packaged (or
trained) with; `make model-package` and `make models` write them. Each answer is then counted in
``modelfleet_predictions_total`` by the bin it falls in: ``q1`` below the first quartile, ``q2``
and ``q3`` between, ``q4`` from the third up. A candidate that predicts like the stable version
gives the same shares (about a quarter each); one whose values shifted moves rows between the
bins, and the prediction-mix gate (rules/rollout.yml, unchanged) compares those shares exactly
as it compares a classifier's classes. Without quartiles every answer counts as ``value``.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_server.core.manifest import Manifest, ManifestError, value_quartiles
from model_server.core.predict import VALUE_BINS, Predictor
from model_server.core.registry import load_bundle

ROOT = Path(__file__).resolve().parents[2]
BOSTON = ROOT / "models" / "boston" / "1.0.0"


def boston_manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BOSTON / "manifest.json").read_text())
    return data


def test_the_quartiles_are_numpys_linear_percentiles_of_the_predictions() -> None:
    values = [3.1, 5.0, 2.0, 8.0, 9.5, 1.0, 0.3, 7.0]
    expected = np.percentile(values, [25, 50, 75])
    assert value_quartiles(values) == pytest.approx(tuple(expected), abs=1e-6)
    assert value_quartiles([1.0]) is None  # nothing to take quartiles of
    assert value_quartiles([1.0, math.nan]) is None


def test_the_seed_regressor_carries_its_quartiles_and_they_round_trip() -> None:
    data = boston_manifest()
    manifest = Manifest.from_dict(data)
    q = manifest.target.value_quartiles
    assert q is not None and len(q) == 3 and q[0] < q[1] < q[2]
    assert manifest.to_dict() == data


@pytest.mark.parametrize(("quartiles", "reason"), [
    ([1.0, 2.0], "expected 3 finite numbers in order"),
    ([3.0, 2.0, 4.0], "expected 3 finite numbers in order"),
    ([1.0, 2.0, "x"], "expected a number"),
])  # fmt: skip
def test_malformed_quartiles_are_refused_naming_the_key(quartiles: list[Any], reason: str) -> None:
    data = boston_manifest()
    data["target"]["value_quartiles"] = quartiles
    with pytest.raises(ManifestError, match=r"^target\.value_quartiles.*" + reason):
        Manifest.from_dict(data)


def test_a_classifier_has_no_value_quartiles() -> None:
    data = json.loads((ROOT / "models" / "diabetes" / "1.0.0" / "manifest.json").read_text())
    data["target"]["value_quartiles"] = [0.1, 0.2, 0.3]
    with pytest.raises(ManifestError, match=r"^target\.value_quartiles: only a regressor"):
        Manifest.from_dict(data)


def test_answers_are_counted_by_quartile_bin() -> None:
    predictor = Predictor(load_bundle(BOSTON))
    q1, q2, q3 = boston_manifest()["target"]["value_quartiles"]
    assert predictor.answer_labels == VALUE_BINS == ("q1", "q2", "q3", "q4")
    values = np.array([q1 - 5, q1, (q1 + q2) / 2, q2, q3 - 0.01, q3, q3 + 9, math.nan])
    # A value on a quartile belongs to the bin above it; NaN is counted in the last.
    assert predictor._value_counts(values) == {"q1": 1, "q2": 2, "q3": 2, "q4": 3}
    x = np.array([[0, 0, 0, 0, 0.5, 6, 50, 4, 1, 300]] * 5, dtype=float)
    prediction = predictor.predict(x)
    assert sum(prediction.counts.values()) == 5 and set(prediction.counts) == set(VALUE_BINS)


def test_a_regressor_packaged_before_quartiles_is_counted_as_value(tmp_path: Path) -> None:
    data = boston_manifest()
    del data["target"]["value_quartiles"]
    bundle = load_bundle(BOSTON)
    older = copy.copy(bundle)
    object.__setattr__(older, "manifest", Manifest.from_dict(data))
    predictor = Predictor(older)
    assert predictor.answer_labels == ("value",)
    x = np.array([[0, 0, 0, 0, 0.5, 6, 50, 4, 1, 300]] * 3, dtype=float)
    assert predictor.predict(x).counts == {"value": 3}


def test_a_new_version_keeps_the_models_bins_so_a_shifted_one_shows(tmp_path: Path) -> None:
    from model_server.package import package
    from sklearn.linear_model import LinearRegression

    from tests.unit.package_helpers import SAMPLE_ROWS, diabetes_regression, sample_csv, save_skops

    x, y, names = diabetes_regression()
    sample = sample_csv(tmp_path, x, names, y)
    repo = tmp_path / "r"
    good = LinearRegression().fit(x, y)
    first = package(save_skops(good, tmp_path / "a.skops"), sample, "sugar", "1",
                    repository=repo, target="y")  # fmt: skip
    shifted = LinearRegression().fit(x, y + 1000)  # wrong on everything, its sample included
    second = package(save_skops(shifted, tmp_path / "b.skops"), sample, "sugar", "2",
                     repository=repo, target="y")  # fmt: skip
    bins = first.manifest.target.value_quartiles
    assert bins is not None and second.manifest.target.value_quartiles == bins
    # On the same traffic the stable version answers about a quarter in each bin, the
    # shifted one all in the last: the prediction-mix gate's difference is far above 0.15.
    traffic = x[:SAMPLE_ROWS]
    stable = Predictor(load_bundle(repo / "sugar" / "1")).predict(traffic).counts
    candidate = Predictor(load_bundle(repo / "sugar" / "2")).predict(traffic).counts
    assert all(abs(stable[q] / len(traffic) - 0.25) < 0.05 for q in VALUE_BINS), stable
    assert candidate["q4"] == len(traffic)
