"""Training: deterministic bundles whose manifests describe the models completely."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from model_server.core.bundle import TRUSTED_TYPES
from model_server.repository import load_index
from model_server.train import train_all
from unit_helpers import DATA_DIR

ROOT = DATA_DIR.parent

MODELS = ("boston", "diabetes", "diabetes-gbt")
BUNDLE_FILES = ("model.skops", "manifest.json")


def manifest(model_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((model_dir / name / "1.0.0" / "manifest.json").read_text())


def test_training_is_byte_for_byte_deterministic(model_dir: Path, tmp_path: Path) -> None:
    train_all(DATA_DIR, tmp_path)
    files = [
        "index.json",
        *(f"{n}/1.0.0/{f}" for n in MODELS for f in ("model.skops", "manifest.json")),
    ]
    for file in files:
        assert (tmp_path / file).read_bytes() == (model_dir / file).read_bytes()


def test_training_writes_a_repository_where_each_model_has_version_1_0_0_current(
    model_dir: Path,
) -> None:
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == list(MODELS)
    index = load_index(model_dir)
    assert {name: m.current for name, m in index.models.items()} == dict.fromkeys(MODELS, "1.0.0")
    for name in MODELS:
        assert [p.name for p in (model_dir / name).iterdir()] == ["1.0.0"]
        assert sorted(p.name for p in (model_dir / name / "1.0.0").iterdir()) == [
            "manifest.json",
            "model.skops",
        ]


def test_the_committed_seed_repository_is_what_training_writes(model_dir: Path) -> None:
    """models/ in the repository is served as it is: it must be exactly the trained models."""
    committed = ROOT / "models"
    files = [
        "index.json",
        *(f"{n}/1.0.0/{f}" for n in MODELS for f in ("model.skops", "manifest.json")),
    ]
    for file in files:
        assert (committed / file).read_bytes() == (model_dir / file).read_bytes(), file


def test_manifest_records_data_and_artifact_checksums(model_dir: Path) -> None:
    pima = "d579e2243fd8bff59098eafc42ac88c80c1e90785d9f53f9285732c3d3d5e591"
    boston = "24ec814c9b6c5bb1cae0f6d203636413195ade13a34b62920787599f63eefd7e"
    assert manifest(model_dir, "diabetes")["training_data"]["sha256"] == pima
    assert manifest(model_dir, "diabetes-gbt")["training_data"]["sha256"] == pima
    assert manifest(model_dir, "boston")["training_data"]["sha256"] == boston
    for name in MODELS:
        m = manifest(model_dir, name)
        assert m["artifact"]["format"] == "skops"
        assert len(m["artifact"]["sha256"]) == 64
        assert set(m["libraries"]) == {"python", "numpy", "scipy", "scikit-learn", "skops"}


def test_diabetes_manifest(model_dir: Path) -> None:
    m = manifest(model_dir, "diabetes")
    assert m["task"] == "classification"
    assert m["estimator"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert [f["name"] for f in m["features"]] == ["pregnant", "glucose", "pressure"]
    assert m["threshold"] == 0.5
    assert "log-odds" in m["threshold_note"]
    assert m["target"]["answers"] == {"neg": "no", "pos": "yes"}
    assert m["training"]["rows"] == 768
    glucose = m["features"][1]
    assert (glucose["min"], glucose["max"], glucose["training_max"]) == (0.0, 400.0, 199.0)


def test_diabetes_gbt_manifest_reports_held_out_metrics(model_dir: Path) -> None:
    m = manifest(model_dir, "diabetes-gbt")
    assert len(m["features"]) == 8
    assert (m["training"]["rows"], m["training"]["test_rows"]) == (537, 231)
    assert 0.6 < m["metrics"]["test_accuracy"] < 1
    assert 0.6 < m["metrics"]["test_roc_auc"] < 1


def test_boston_manifest(model_dir: Path) -> None:
    m = manifest(model_dir, "boston")
    names = [f["name"] for f in m["features"]]
    assert names == ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax"]
    assert "b" not in names
    assert (m["training"]["rows"], m["training"]["test_rows"]) == (400, 106)
    assert set(m["metrics"]) == {"test_r2", "test_rmse", "training_r2"}
    chas = m["features"][3]
    assert chas["allowed"] == [0, 1]
    assert {f["name"]: f["max"] for f in m["features"]}["age"] == 100.0


@pytest.mark.parametrize("name", MODELS)
def test_artifacts_contain_only_trusted_types(model_dir: Path, name: str) -> None:
    def types(node: Any) -> set[str]:
        found = set()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            for value in node.values():
                found |= types(value)
        elif isinstance(node, list):
            for value in node:
                found |= types(value)
        return found

    with zipfile.ZipFile(model_dir / name / "1.0.0" / "model.skops") as archive:
        used = types(json.loads(archive.read("schema.json")))
    assert {t for t in used if not t.startswith("builtins.")} <= set(TRUSTED_TYPES)
