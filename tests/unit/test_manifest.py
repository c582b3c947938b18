"""The bundle manifest: one typed class, validated when read, exact when written back."""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from model_server.core.bundle import BundleError, load_bundle
from model_server.core.manifest import (
    MANIFEST_VERSION,
    CategoricalFeature,
    Manifest,
    ManifestError,
    NumericFeature,
)

MODELS = ("boston", "diabetes", "diabetes-gbt")
Edit = Callable[[dict[str, Any]], object]


def seed_text(model_dir: Path, name: str) -> str:
    return (model_dir / name / "1.0.0" / "manifest.json").read_text(encoding="utf-8")


def seed(model_dir: Path, name: str) -> dict[str, Any]:
    return json.loads(seed_text(model_dir, name))


def multiclass() -> dict[str, Any]:
    """An issue-10 manifest: a categorical feature, three classes, golden rows, no threshold."""
    return {
        "manifest_version": 1,
        "name": "irises",
        "version": "2024-06.1",
        "task": "classification",
        "description": "A pipeline with a one-hot encoded colour.",
        "estimator": "sklearn.pipeline.Pipeline",
        "features": [
            {"name": "petal_length", "type": "number", "description": "", "min": 0, "max": 10},
            {
                "name": "colour",
                "type": "string",
                "description": "Flower colour",
                "allowed": ["blue", "white", "purple"],
            },
        ],
        "target": {"name": "species", "classes": ["setosa", "versicolor", "virginica"]},
        "training": {"rows": 150, "split": "none: all rows"},
        "metrics": {"training_accuracy": 0.96},
        "training_data": {"file": "sample.csv", "sha256": "a" * 64},
        "artifact": {"file": "model.skops", "format": "skops", "sha256": "b" * 64},
        "libraries": {"scikit-learn": "1.9.1"},
        "golden_rows": [
            {
                "inputs": {"petal_length": 1.4, "colour": "blue"},
                "prediction": "setosa",
                "probabilities": {"setosa": 0.9, "versicolor": 0.08, "virginica": 0.02},
            }
        ],
    }


# --------------------------------------------------------------------------------------------
# The seed manifests


@pytest.mark.parametrize("name", MODELS)
def test_every_seed_manifest_round_trips_byte_for_byte(model_dir: Path, name: str) -> None:
    text = seed_text(model_dir, name)
    manifest = Manifest.from_dict(json.loads(text))
    assert json.dumps(manifest.to_dict(), indent=2) + "\n" == text


def test_training_writes_the_format_version_as_the_first_key(model_dir: Path) -> None:
    for name in MODELS:
        assert next(iter(seed(model_dir, name).items())) == ("manifest_version", MANIFEST_VERSION)


def test_seed_manifests_read_as_typed_fields(model_dir: Path) -> None:
    diabetes = Manifest.from_dict(seed(model_dir, "diabetes"))
    assert diabetes.feature_names == ("pregnant", "glucose", "pressure")
    glucose = diabetes.features[1]
    assert isinstance(glucose, NumericFeature)
    assert (glucose.type, glucose.min, glucose.max, glucose.training_max) == (
        "integer",
        0.0,
        400.0,
        199.0,
    )
    assert (diabetes.target.positive_class, diabetes.target.classes) == ("pos", ("neg", "pos"))
    assert [diabetes.target.answer(c) for c in ("neg", "pos")] == ["no", "yes"]
    assert diabetes.threshold == 0.5
    boston = Manifest.from_dict(seed(model_dir, "boston"))
    chas = boston.features[3]
    assert isinstance(chas, NumericFeature)
    assert (chas.type, chas.allowed) == ("binary", (0, 1))
    assert (boston.task, boston.threshold, boston.target.classes) == ("regression", None, None)
    assert boston.training.test_rows == 106


def test_get_model_serves_the_manifest_file(model_dir: Path, client: FlaskClient) -> None:
    for name in MODELS:
        assert client.get(f"/models/{name}").get_json() == seed(model_dir, name)


# --------------------------------------------------------------------------------------------
# Refusals, each naming the key path


def _set(path: list[Any], value: object) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(*path: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


INVALID: list[tuple[str, str, Edit, str]] = [
    # (seed model, key path, edit, reason in the message)
    ("diabetes", "features[2].min", _set(["features", 2, "min"], "0"), "expected a number"),
    ("diabetes", "features[0].min", _set(["features", 0, "min"], True), "got a boolean"),
    (
        "diabetes",
        "metrics.training_accuracy",
        _set(["metrics", "training_accuracy"], math.nan),
        "expected a finite number",
    ),
    ("diabetes", "name", _delete("name"), "missing"),
    ("diabetes", "task", _set(["task"], "clustering"), "expected one of"),
    ("diabetes", "features", _set(["features"], {}), "expected a list"),
    ("diabetes", "features", _set(["features"], []), "at least one feature"),
    ("diabetes", "target", _set(["target"], "diabetes"), "expected an object"),
    ("diabetes", "treshold", _set(["treshold"], 0.5), "unknown key"),
    ("diabetes", "features[1].colour", _set(["features", 1, "colour"], "red"), "unknown key"),
    ("diabetes", "features[0].type", _set(["features", 0, "type"], "float"), "expected one of"),
    ("diabetes", "features[1].name", _set(["features", 1, "name"], "pregnant"), "duplicate"),
    ("diabetes", "features[0].max", _set(["features", 0, "max"], -1.0), "below min"),
    ("diabetes", "threshold", _set(["threshold"], 1.5), "not a probability"),
    ("diabetes", "threshold", _set(["threshold"], None), "got null"),
    ("diabetes", "target.answers", _delete("target", "answers", "neg"), "one answer per class"),
    (
        "diabetes",
        "target.positive_class",
        _set(["target", "positive_class"], "maybe"),
        "is not a class",
    ),
    ("diabetes", "target.classes", _set(["target", "classes"], ["pos"]), "at least two classes"),
    ("diabetes", "name", _set(["name"], "../diabetes"), "not a plain name"),
    ("diabetes", "version", _set(["version"], "1/0"), "not a plain name"),
    ("diabetes", "training.rows", _set(["training", "rows"], -1), "non-negative integer"),
    ("diabetes", "artifact.sha256", _set(["artifact", "sha256"], "ABC"), "64 lowercase hex"),
    ("diabetes", "artifact.file", _set(["artifact", "file"], "../model.skops"), "file name"),
    ("diabetes", "artifact.format", _set(["artifact", "format"], "pickle"), "is not one of"),
    ("diabetes", "libraries", _delete("libraries", "scikit-learn"), "missing scikit-learn"),
    ("boston", "features[3].allowed", _set(["features", 3, "allowed"], [0, 2]), "outside"),
    ("boston", "features[3].allowed", _set(["features", 3, "allowed"], [0, 0]), "repeat"),
    ("boston", "target.classes", _set(["target", "classes"], ["a", "b"]), "only a classifier"),
    ("boston", "threshold_note", _set(["threshold_note"], "why"), "there is no threshold"),
]


@pytest.mark.parametrize(
    ("model", "path", "edit", "reason"), INVALID, ids=[f"{c[1]}-{c[3]}" for c in INVALID]
)
def test_an_invalid_manifest_is_refused_naming_the_key_path(
    model_dir: Path, model: str, path: str, edit: Edit, reason: str
) -> None:
    data = seed(model_dir, model)
    edit(data)
    with pytest.raises(ManifestError) as refused:
        Manifest.from_dict(data)
    assert refused.value.path == path
    assert str(refused.value).startswith(f"{path}: ")
    assert reason in str(refused.value)


def test_a_manifest_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ManifestError, match="expected an object"):
        Manifest.from_dict(["name", "diabetes"])


@pytest.mark.parametrize("version", [None, 0, 3, "1", 1.0, True])
def test_an_unknown_format_version_is_refused_naming_the_supported_one(
    model_dir: Path, version: object
) -> None:
    data = seed(model_dir, "diabetes")
    if version is None:
        del data["manifest_version"]
    else:
        data["manifest_version"] = version
    with pytest.raises(ManifestError, match=r"^manifest_version: .*reads manifest_version 1 or 2$"):
        Manifest.from_dict(data)


def test_the_version_is_checked_before_the_keys_a_newer_format_may_have_changed(
    model_dir: Path,
) -> None:
    data = {"manifest_version": 3, "model": {"name": "diabetes"}}
    with pytest.raises(ManifestError, match="unsupported version 3"):
        Manifest.from_dict(data)


def test_a_manifest_built_in_code_is_held_to_the_same_rules(model_dir: Path) -> None:
    manifest = Manifest.from_dict(seed(model_dir, "diabetes"))
    with pytest.raises(ManifestError, match=r"^threshold: 2 is not a probability"):
        replace(manifest, threshold=2)
    with pytest.raises(ManifestError, match=r"^manifest_version: 3"):
        replace(manifest, manifest_version=3)


# --------------------------------------------------------------------------------------------
# Own models (issue 10): categorical features, several classes, golden rows


def test_a_categorical_multiclass_manifest_is_accepted_and_round_trips() -> None:
    data = multiclass()
    manifest = Manifest.from_dict(copy.deepcopy(data))
    colour = manifest.features[1]
    assert isinstance(colour, CategoricalFeature)
    assert (colour.kind, colour.allowed) == ("categorical", ("blue", "white", "purple"))
    assert manifest.target.classes == ("setosa", "versicolor", "virginica")
    assert manifest.target.answer("virginica") == "virginica"  # no mapping: the class label
    assert manifest.threshold is None
    assert manifest.golden_rows is not None
    assert manifest.golden_rows[0].prediction == "setosa"
    assert json.dumps(manifest.to_dict()) == json.dumps(data)


MULTICLASS_INVALID: list[tuple[str, Edit, str]] = [
    ("features[1].allowed[1]", _set(["features", 1, "allowed"], ["blue", 3]), "expected a string"),
    ("features[1].allowed", _set(["features", 1, "allowed"], []), "at least one value"),
    ("features[1].min", _set(["features", 1, "min"], 0), "unknown key"),
    ("threshold", _set(["threshold"], 0.5), "needs a binary target"),
    (
        "golden_rows[0].inputs.colour",
        _set(["golden_rows", 0, "inputs", "colour"], "red"),
        "not a valid value",
    ),
    ("golden_rows[0].inputs", _delete("golden_rows", 0, "inputs", "colour"), "expected the"),
    (
        "golden_rows[0].prediction",
        _set(["golden_rows", 0, "prediction"], "rose"),
        "not an answer label",
    ),
    (
        "golden_rows[0].probabilities",
        _set(["golden_rows", 0, "probabilities", "setosa"], 0.5),
        "sum to 1",
    ),
]


@pytest.mark.parametrize(
    ("path", "edit", "reason"), MULTICLASS_INVALID, ids=[c[0] for c in MULTICLASS_INVALID]
)
def test_an_invalid_own_model_manifest_is_refused_naming_the_key_path(
    path: str, edit: Edit, reason: str
) -> None:
    data = multiclass()
    edit(data)
    with pytest.raises(ManifestError) as refused:
        Manifest.from_dict(data)
    assert (refused.value.path, reason in refused.value.reason) == (path, True)


# --------------------------------------------------------------------------------------------
# load_bundle


@pytest.fixture
def bundle_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the diabetes bundle."""
    return Path(shutil.copytree(model_dir / "diabetes" / "1.0.0", tmp_path / "diabetes" / "1.0.0"))


def _rewrite(bundle: Path, edit: Edit) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_load_bundle_reads_a_typed_manifest(model_dir: Path) -> None:
    bundle = load_bundle(model_dir / "diabetes" / "1.0.0")
    assert isinstance(bundle.manifest, Manifest)
    assert (bundle.name, bundle.version, bundle.task) == ("diabetes", "1.0.0", "classification")
    assert bundle.schema.names == bundle.manifest.feature_names
    assert bundle.sha256 == bundle.manifest.artifact.sha256


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(["features", 1, "min"], "zero"), "invalid manifest.json: features[1].min: expected"),
        (_set(["manifest_version"], 7), "invalid manifest.json: manifest_version: unsupported"),
        (_set(["target", "classes"], ["pos", "neg"]), "the model's classes ['neg', 'pos'] differ"),
        (
            _set(
                ["features", 2],
                {"name": "x", "type": "string", "description": "", "allowed": ["a"]},
            ),
            "the string features ['x'] need an estimator fitted on named columns",
        ),
    ],
)
def test_load_bundle_refuses_a_bad_manifest(bundle_copy: Path, edit: Edit, message: str) -> None:
    _rewrite(bundle_copy, edit)
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle_copy)
    assert message in str(refused.value)


def test_load_bundle_refuses_a_manifest_that_is_not_json(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text('{"name": ')
    with pytest.raises(BundleError, match=r"manifest\.json is not JSON"):
        load_bundle(bundle_copy)
