"""The official Triton and KServe clients predict through the load balancer, unchanged.

The clients live in their own environment (``make clients``: .venv-clients); the calls are
in ``official_clients.py``, run once per session, and each test below checks one part of
what they got.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.stack.stackctl import Stack

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"


@pytest.fixture(scope="module")
def results(stack: Stack) -> dict[str, Any]:
    if not CLIENTS_PYTHON.exists():
        pytest.fail("the official clients are not installed: run `make clients`")
    proc = subprocess.run(
        [str(CLIENTS_PYTHON), str(Path(__file__).with_name("official_clients.py")), stack.lb_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_triton_client_health_and_metadata(results: dict[str, Any]) -> None:
    t = results["triton"]
    assert (t["live"], t["ready"], t["model_ready"], t["version_ready"]) == (True,) * 4
    assert t["metadata_name"] == "diabetes"


@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_triton_client_infers_in_json_and_binary(results: dict[str, Any], encoding: str) -> None:
    answer = results["triton"][f"diabetes_{encoding}"]
    assert answer["predict"] == ["no", "yes"]
    low, high = answer["probability"]
    assert low < 0.5 < high
    assert answer["version"] == "1.0.0"


def test_triton_client_defaults_fp32_binary_regression(results: dict[str, Any]) -> None:
    assert results["triton"]["boston_default"] == [pytest.approx(22.5813, abs=1e-3)]


def test_triton_client_reads_the_error_string(results: dict[str, Any]) -> None:
    error = results["triton"]["error"]
    assert error["status"] == "422"
    assert error["message"].startswith("wrong_width: ")


def test_kserve_v1_client_liveness_readiness_predict(results: dict[str, Any]) -> None:
    k = results["kserve"]
    assert k["v1_live"] is True
    assert k["v1_model_ready"] is True
    assert k["v1_predict"] == {"predictions": ["no", "yes"]}
    assert "wrong_width: " in k["v1_error"]


@pytest.mark.parametrize("encoding", ["json", "binary"])
def test_kserve_v2_client_infers_in_json_and_binary(results: dict[str, Any], encoding: str) -> None:
    k = results["kserve"]
    assert k["v2_ready"] is True and k["v2_model_ready"] is True
    answer = k[f"v2_{encoding}"]
    assert answer["predict"] == ["no", "yes"]
    assert answer["probability"][0] < 0.5 < answer["probability"][1]
