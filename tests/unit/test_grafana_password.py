"""scripts/grafana_password.py: the admin password file Grafana reads, and nobody else.

Grafana itself cannot run here (its image comes from a registry); the proof that uid 472 really
reads the mounted secret is tests/stack/test_stack_grafana_secret.py.
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from bench import compose
from tests.loadgen.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_UID = 472

grafana_password = load_script("grafana_password")


def compose_config(**env: str) -> dict:
    """`compose config` with the dashboards profile, as JSON."""
    return compose.config(("dashboards",), project="mf-unit-config", **env)


def test_grafana_reads_its_password_from_the_secret_and_never_gets_a_default() -> None:
    grafana = compose_config()["services"]["grafana"]
    env = grafana["environment"]
    (secret,) = grafana["secrets"]
    assert secret["source"] == "grafana_admin_password"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == secret["target"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    # Grafana's run.sh refuses both at once, and a literal password would be in the repository.
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert grafana["user"] == str(GRAFANA_UID)


def test_grafana_refuses_to_start_without_a_readable_password() -> None:
    entrypoint = compose_config()["services"]["grafana"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    guard = entrypoint[2]
    for check in ('[ ! -r "$$f" ]', '[ ! -s "$$f" ]', "exit 1"):
        assert check in guard
    assert guard.endswith('exec /run.sh "$$@"')


def test_the_script_resolves_the_file_and_uid_from_compose(tmp_path: Path) -> None:
    target = tmp_path / "pw"
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "scripts.grafana_password"],
        cwd=ROOT,
        env={
            **os.environ,
            "COMPOSE_PROJECT_NAME": "mf-unit-config",
            "GRAFANA_ADMIN_PASSWORD_FILE": str(target),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(target) in proc.stdout
    assert target.read_text().strip()
    assert grafana_password.acl_readers(target) == {GRAFANA_UID}


def test_make_dashboards_creates_the_password_with_the_script() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\ndashboards:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:] if not line.strip().startswith("@#")]
    # The password first, then Grafana.
    assert lines[0] == "@$(PY) -m scripts.grafana_password"
    assert "up -d --wait --no-deps grafana" in lines[1]


def test_a_new_password_is_random_and_readable_by_its_owner_and_grafana_only(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a" / "pw", tmp_path / "b" / "pw"
    grafana_password.ensure_password(first, GRAFANA_UID)
    grafana_password.ensure_password(second, GRAFANA_UID)
    assert len(first.read_text().strip()) >= 32
    assert first.read_text() != second.read_text()
    mode = first.stat().st_mode
    assert mode & (stat.S_IRWXO) == 0, oct(mode)
    assert grafana_password.acl_readers(first) == {GRAFANA_UID}
    # The group's own entry grants nothing; the group bits shown are the ACL mask.
    raw = os.getxattr(first, "system.posix_acl_access")
    entries = {tag: perm for tag, perm, _ in struct.iter_unpack("<HHI", raw[4:])}
    assert entries[0x04] == 0 and entries[0x20] == 0


def test_an_existing_password_is_kept_and_granted_again(tmp_path: Path) -> None:
    # A file from before the ACL (the old Makefile recipe): same password, now readable.
    path = tmp_path / "pw"
    path.write_text("kept-password\n")
    path.chmod(0o600)
    assert grafana_password.acl_readers(path) == set()
    grafana_password.ensure_password(path, GRAFANA_UID)
    assert path.read_text() == "kept-password\n"
    assert grafana_password.acl_readers(path) == {GRAFANA_UID}


def test_an_empty_password_file_is_refilled(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.touch()
    grafana_password.ensure_password(path, GRAFANA_UID)
    assert path.read_text().strip()


def test_without_acls_root_hands_the_file_to_grafana(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pw"
    path.write_text("x\n")

    def no_acls(*args: object) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", no_acls)
    if os.geteuid() != 0:
        with pytest.raises(SystemExit, match="sudo chown"):
            grafana_password.grant_read(path, GRAFANA_UID)
        return
    grafana_password.grant_read(path, GRAFANA_UID)
    assert path.stat().st_uid == GRAFANA_UID
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


def test_main_takes_an_explicit_file_and_uid_or_prints_its_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "pw"
    assert grafana_password.main([str(target), str(GRAFANA_UID)]) == 0
    assert f"Grafana admin password: {target}" in capsys.readouterr().out
    assert grafana_password.acl_readers(target) == {GRAFANA_UID}
    assert grafana_password.main(["only-a-path"]) == 2
    assert "python -m scripts.grafana_password PATH UID" in capsys.readouterr().err
