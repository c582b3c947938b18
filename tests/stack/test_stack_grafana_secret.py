"""Grafana really gets the password `make dashboards` made, and never falls back to admin/admin.

Grafana's image comes from a registry and cannot run here, so the grafana service runs as
compose.yaml defines it (uid 472, read-only root, the secret, GF_SECURITY_ADMIN_PASSWORD__FILE,
the entrypoint guard), with one difference: a local image, debian:bookworm-slim, whose /run.sh
is a stand-in doing what Grafana's run.sh does with a __FILE variable (export its content).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.loadgen.conftest import load_script
from tests.stack.stackctl import require_docker

ROOT = Path(__file__).resolve().parents[2]
grafana_password = load_script("grafana_password")
PROJECT = os.environ.get("MODELFLEET_TEST_PROJECT", "modelfleet-test") + "-grafana"

# Grafana's run.sh, reduced to the __FILE handling (packaging/docker/run.sh in grafana/grafana):
# the file's content becomes the variable, and a failed read is not an error there.
RunGrafana = Callable[[Path], subprocess.CompletedProcess[str]]

STAND_IN_RUN_SH = """#!/bin/sh
set -e
export GF_SECURITY_ADMIN_PASSWORD="$(cat "$GF_SECURITY_ADMIN_PASSWORD__FILE")"
echo "admin password: [$GF_SECURITY_ADMIN_PASSWORD]"
"""


@pytest.fixture
def grafana_run(tmp_path: Path) -> Iterator[RunGrafana]:
    """Run the grafana service once, with a given password file, and return its result."""
    require_docker()
    run_sh = tmp_path / "run.sh"
    run_sh.write_text(STAND_IN_RUN_SH)
    run_sh.chmod(0o755)
    override = tmp_path / "stand-in.yaml"
    override.write_text(
        "services:\n"
        "  grafana:\n"
        "    image: debian:bookworm-slim\n"
        "    pull_policy: never\n"
        "    volumes:\n"
        f"      - {run_sh}:/run.sh:ro\n"
    )
    base = [
        str(ROOT / "scripts" / "compose"),
        "-f",
        str(ROOT / "compose.yaml"),
        "-f",
        str(override),
    ]

    def env(password_file: Path) -> dict[str, str]:
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "GRAFANA_ADMIN_PASSWORD_FILE": str(password_file),
        }

    def run(password_file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, "--profile", "dashboards", "run", "--rm", "--no-deps", "-T", "grafana"],
            cwd=ROOT,
            env=env(password_file),
            capture_output=True,
            text=True,
            timeout=120,
        )

    yield run
    subprocess.run(
        [*base, "--profile", "*", "down", "-v", "--remove-orphans"],
        cwd=ROOT,
        env=env(tmp_path / "none"),
        capture_output=True,
        timeout=120,
    )


def make_password(path: Path) -> None:
    """The password step of `make dashboards`, for this file (compose resolves it)."""
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "scripts.grafana_password"],
        cwd=ROOT,
        env={
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "GRAFANA_ADMIN_PASSWORD_FILE": str(path),
        },
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_grafana_uid_reads_the_password_make_dashboards_wrote(
    grafana_run: RunGrafana, tmp_path: Path
) -> None:
    password_file = tmp_path / "build" / "grafana-admin-password"
    make_password(password_file)
    password = password_file.read_text().strip()
    assert password
    result = grafana_run(password_file)
    assert result.returncode == 0, result.stderr
    assert f"admin password: [{password}]" in result.stdout


def test_grafana_refuses_to_start_when_it_cannot_read_the_password(
    grafana_run: RunGrafana, tmp_path: Path
) -> None:
    # What the old recipe made: umask 077, owned by the host user, no grant for uid 472.
    password_file = tmp_path / "grafana-admin-password"
    password_file.write_text("not-readable-by-grafana\n")
    password_file.chmod(0o600)
    result = grafana_run(password_file)
    assert result.returncode != 0
    assert "unreadable for uid 472" in result.stderr
    # The stand-in run.sh (Grafana) never ran, so admin/admin never comes up.
    assert "admin password:" not in result.stdout


def test_grafana_refuses_to_start_with_an_empty_password(
    grafana_run: RunGrafana, tmp_path: Path
) -> None:
    password_file = tmp_path / "grafana-admin-password"
    password_file.touch()
    os.setxattr(
        password_file, "system.posix_acl_access", grafana_password.owner_and_reader_acl(472)
    )
    result = grafana_run(password_file)
    assert result.returncode != 0
    assert "admin password:" not in result.stdout


def test_nobody_else_reads_the_password(tmp_path: Path) -> None:
    require_docker()
    password_file = tmp_path / "grafana-admin-password"
    make_password(password_file)
    for user in ("473", "473:0", "65534:65534"):
        result = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                user,
                "-v",
                f"{password_file}:/run/secrets/pw:ro",
                "debian:bookworm-slim",
                "cat",
                "/run/secrets/pw",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0, user
        assert "Permission denied" in result.stderr, user
