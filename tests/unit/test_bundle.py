"""Bundles are verified before loading; a bad one keeps the server alive but not ready."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from model_server.core.bundle import BundleError, load_bundle
from unit_helpers import sample


@pytest.fixture
def tampered_dir(model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the models where one byte of boston's artifact differs."""
    out = tmp_path / "models"
    shutil.copytree(model_dir, out)
    artifact = out / "boston" / "1.0.0" / "model.skops"
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0x01
    artifact.write_bytes(bytes(data))
    return out


def test_load_bundle_refuses_a_sha256_mismatch(tampered_dir: Path) -> None:
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(tampered_dir / "boston" / "1.0.0")


def test_a_sha256_mismatch_makes_only_that_model_unready(
    tampered_dir: Path,
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="model_server"):
        logging.getLogger("model_server").addHandler(caplog.handler)
        try:
            app = make_app(model_dir=tampered_dir)
        finally:
            logging.getLogger("model_server").removeHandler(caplog.handler)
    assert any("refusing model boston/1.0.0" in r.getMessage() for r in caplog.records)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["failed_models"] == ["boston/1.0.0"]
    assert ready.get_json()["unready_models"] == ["boston"]
    assert ready.get_json()["models"] == ["diabetes", "diabetes-gbt"]
    assert client.get("/ping").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/predict_data?pregnant=1&glucose=3&pressure=1").status_code == 200
    response = client.get("/models/boston/predict_data?crim=1")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "model_unavailable"
    assert sample(app, "modelfleet_model_ready", {"model": "boston"}) == 0
    assert sample(app, "modelfleet_model_ready", {"model": "diabetes"}) == 1


def test_missing_model_dir_is_not_ready(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    client = make_app(model_dir=tmp_path / "nothing").test_client()
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_a_missing_default_model_fails_only_the_routes_that_use_it(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(default_model="absent").test_client()
    assert client.get("/readyz").status_code == 200
    response = client.get("/predict_data?pregnant=1&glucose=3&pressure=1")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_model"
    assert (
        client.get("/models/diabetes/predict_data?pregnant=1&glucose=3&pressure=1").status_code
        == 200
    )


@pytest.mark.parametrize(
    "trusted",
    [["builtins.eval"], ["operator.attrgetter"], ["sklearn.tree._tree.Tree", "os.system"]],
)
def test_a_manifest_cannot_trust_types_outside_sklearn_numpy_and_scipy(
    model_dir: Path, tmp_path: Path, trusted: list[str]
) -> None:
    import json

    bundle = shutil.copytree(model_dir / "boston" / "1.0.0", tmp_path / "boston" / "1.0.0")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["trusted_types"] = trusted
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside scikit-learn, numpy and scipy"):
        load_bundle(bundle)
