"""Fixtures for the report generators' unit tests: their modules, recorded data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import bench.peers
import bench.scaling_report

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (scripts/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def scaling() -> ModuleType:
    """bench.scaling_report: the analysis and rendering of `make scaling-report`."""
    return bench.scaling_report


@pytest.fixture
def recorded() -> dict[str, Any]:
    """A real `make scaling-report` run on a 2-core machine (results.json, trimmed)."""
    return json.loads((DATA / "scaling_results.json").read_text())


@pytest.fixture(scope="session")
def peers() -> ModuleType:
    """bench.peers: `make bench-peers`."""
    return bench.peers
