"""Helpers and reference inputs shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from model_server.api.common import EXTENSION_KEY


def sample(app: Flask, name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one metric sample of ``app`` (0.0 when the series does not exist)."""
    registry = app.extensions[EXTENSION_KEY].metrics.registry
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


BOSTON_COLUMNS = ["crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax"]
#: The boston query of the brief: crim=0.01, zn=18, indus=2.3, chas=0, nox=0.5, rm=6, age=65,
#: dis=4, rad=1, tax=242.
BOSTON_VALUES = [0.01, 18, 2.3, 0, 0.5, 6, 65, 4, 1, 242]

#: The vendored seed data.
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
