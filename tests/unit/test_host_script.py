"""The first-hour checks of scripts/host.sh: one line saying what to do, and a failing exit.

Docker's answers are simulated with a stub ``docker`` first on PATH; the port check binds a
real port on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "scripts" / "host.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOST), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def stub_docker(tmp_path: Path, stderr: str) -> dict[str, str]:
    """A PATH whose ``docker info`` fails with ``stderr``, as the real CLI does."""
    stub = tmp_path / "docker"
    stub.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    stub.chmod(0o755)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("stderr", "advice"),
    [
        (
            "permission denied while trying to connect to the Docker daemon socket at "
            "unix:///var/run/docker.sock",
            "sudo usermod -aG docker",
        ),
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?",
            "sudo systemctl start docker",
        ),
    ],
)
def test_docker_problems_get_one_line_naming_the_fix(
    tmp_path: Path, stderr: str, advice: str
) -> None:
    proc = run("docker", env=stub_docker(tmp_path, stderr))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("!! ")
    assert advice in lines[0]


def test_missing_docker_cli_names_the_install(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "id", "dirname"):
        (bare / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    proc = run("docker", env={"PATH": str(bare)})
    assert proc.returncode == 1
    assert "Docker is not installed" in proc.stderr


def test_a_taken_port_is_named_with_the_variable_to_change() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run("ports", env={"LB_PORT": str(port), "COMPOSE_PROJECT_NAME": "mf-hosttest"})
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert f"127.0.0.1:{port}" in line
    assert f"make up LB_PORT={port + 1}" in line


def test_packages_already_present_install_nothing() -> None:
    proc = run("packages", "bash:bash", "python3:python3")
    assert proc.returncode == 0
    assert proc.stdout == proc.stderr == ""
