"""Every x86-64 process of the project runs OpenBLAS's Haswell kernels (model_server/blas.py)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from model_server import blas

SERVER = str(Path(blas.__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="the kernels are pinned on x86-64 only"
)

PROBE = (
    "import model_server, numpy, threadpoolctl; "
    "print([i.get('architecture') for i in threadpoolctl.threadpool_info() "
    "if i['internal_api'] == 'openblas'])"
)


def test_importing_the_package_first_pins_the_kernels_of_the_openblas_numpy_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["PYTHONPATH"] = SERVER
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.strip() == repr([blas.X86_64_CORETYPE])


def test_a_core_type_set_by_the_user_is_kept() -> None:
    env = {**os.environ, "OPENBLAS_CORETYPE": "Sandybridge", "PYTHONPATH": SERVER}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.strip() == "['Sandybridge']"
