"""What the stack tests drive a stack with: the fleet and traffic helpers ``make chaos`` uses
too (bench/fleet.py, bench/traffic.py), and the rule that on CI a missing Docker fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from bench.fleet import Prober, Stack, containers, lb_exec, upstream_state, worker_pids
from bench.traffic import LOAD_VALUES, Load, LoadResult, OverloadResult, overload

__all__ = [
    "LOAD_VALUES",
    "Load",
    "LoadResult",
    "OverloadResult",
    "Prober",
    "Stack",
    "containers",
    "lb_exec",
    "overload",
    "require_docker",
    "upstream_state",
    "worker_pids",
]


def _docker_available() -> str | None:
    """Return why Docker cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"the Docker engine does not answer: {probe.stderr.strip()[:200]}"
    return None


def require_docker() -> None:
    """Skip the calling test when Docker cannot be used here; on CI (CI=true), fail it."""
    reason = _docker_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"stack tests are mandatory on CI, but {reason}")
        pytest.skip(reason)
