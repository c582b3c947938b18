"""What the stack tests drive a stack with: the fleet and traffic helpers ``make chaos`` uses
too (bench/fleet.py, bench/traffic.py), and the rule that on CI a missing Docker fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bench.fleet import Prober, Stack, containers, lb_exec, upstream_state, worker_pids
from bench.traffic import LOAD_VALUES, Load, LoadResult, OverloadResult, overload
from scripts.swarm_services import node_state

__all__ = [
    "LOAD_VALUES",
    "Load",
    "LoadResult",
    "OverloadResult",
    "Prober",
    "Stack",
    "containers",
    "deployed_on_swarm",
    "lb_exec",
    "overload",
    "require_docker",
    "run_swarm",
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


def run_swarm(
    settings: Mapping[str, str], out: Path, *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.swarm --out OUT ARGS` as `make swarm-*` runs it, with ``settings``
    in its environment; its output is printed."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **settings, "COMPOSE_PROJECT_NAME": "modelfleet-swarm"}
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.swarm", "--out", str(out), *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    print(proc.stdout + proc.stderr)
    return proc


@contextlib.contextmanager
def deployed_on_swarm(
    settings: Mapping[str, str], out: Path
) -> Iterator[subprocess.CompletedProcess[str]]:
    """`make swarm-up` with ``settings`` (its result), and `make swarm-down` after, which must
    succeed and leave the host's swarm membership as it found it."""
    require_docker()
    before = node_state()["LocalNodeState"]
    started = time.monotonic()
    up = run_swarm(settings, out, "up")
    print(f"swarm stack up in {time.monotonic() - started:.1f} s")
    try:
        yield up
    finally:
        down = run_swarm(settings, out, "down")
        assert down.returncode == 0, down.stderr
        assert node_state()["LocalNodeState"] == before
        if before == "inactive":
            assert "left the one-node swarm make swarm-up created" in down.stdout
