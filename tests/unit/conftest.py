"""Shared fixtures: models trained once per session, an app and a test client over them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# pyproject's pythonpath will cover this too; inserting here keeps `pytest tests/unit` working
# on its own.
sys.path.insert(0, str(ROOT / "services" / "model-server"))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from model_server.app import create_app  # noqa: E402
from model_server.settings import Settings  # noqa: E402
from model_server.train import train_all  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

DATA_DIR = ROOT / "data"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three models, trained once from the vendored data (about two seconds)."""
    out = tmp_path_factory.mktemp("models")
    train_all(DATA_DIR, out)
    return out


@pytest.fixture(scope="session")
def make_app(model_dir: Path) -> Callable[..., Flask]:
    """Build an app over the trained models; keyword arguments override ``Settings``.

    Every app gets its own metrics registry, so tests never see each other's counters.
    """

    def make(**overrides: object) -> Flask:
        settings = Settings(
            **{"model_dir": model_dir, "replica_id": "replica-test", **overrides}  # type: ignore[arg-type]
        )
        app = create_app(settings, metrics_registry=CollectorRegistry())
        app.config["TESTING"] = True
        return app

    return make


@pytest.fixture(scope="session")
def app(make_app: Callable[..., Flask]) -> Flask:
    """One app for the read-only tests (predictions do not change server state)."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the shared app."""
    return app.test_client()


SEED_VERSION = "1.0.0"


def seed_bundle(model_dir: Path, name: str) -> Path:
    """The bundle directory of a seed model in the trained repository ``model_dir``."""
    return model_dir / name / SEED_VERSION
