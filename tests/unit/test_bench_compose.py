"""bench.compose: the compose commands a Project runs, with a fake scripts/compose that records
its arguments and environment (the real one is exercised by test_build_files and
test_check_compose)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bench import compose

# Prints {"args": [...], "project": ..., "lb_port": ...} on stdout; `config` prints a config;
# `fail` fails with a message on both streams.
FAKE = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if "fail" in args:
    print("out: no such service"); print("err: no such service", file=sys.stderr); sys.exit(3)
if "config" in args:
    print(json.dumps({"services": {"model": {"image": "m"}}, "args": args,
                      "env_lb": os.environ.get("LB_PORT"), "env_x": os.environ.get("X")}))
    sys.exit(0)
if "ps" in args:
    print("abc\\ndef"); sys.exit(0)
print(json.dumps({"args": args, "project": os.environ.get("COMPOSE_PROJECT_NAME"),
                  "lb_port": os.environ.get("LB_PORT"), "cwd": os.getcwd()}))
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "compose"
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def project(fake: Path, tmp_path: Path, **kw: object) -> compose.Project:
    settings = {"COMPOSE_PROJECT_NAME": "mf-unit", "LB_PORT": "38999"}
    return compose.Project(settings, compose=fake, root=tmp_path, **kw)  # type: ignore[arg-type]


def test_a_project_must_be_named() -> None:
    with pytest.raises(ValueError, match="COMPOSE_PROJECT_NAME"):
        compose.Project({"LB_PORT": "1"})


def test_commands_run_the_projects_compose_with_its_settings_over_the_environment(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LB_PORT", "8080")  # the caller's own stack's port: overridden
    p = project(fake, tmp_path)
    assert p.name == "mf-unit"
    assert p.command("ps") == [str(fake), "ps"]
    got = json.loads(p.run("logs", "--tail=1", capture=True))
    assert got == {
        "args": ["logs", "--tail=1"],
        "project": "mf-unit",
        "lb_port": "38999",
        "cwd": str(tmp_path),
    }


def test_up_waits_for_health_and_removes_orphans(
    fake: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project(fake, tmp_path).up("lb")
    assert json.loads(capfd.readouterr().out)["args"] == [
        "up", "-d", "--wait", "--remove-orphans", "lb",
    ]  # fmt: skip


def test_down_reaches_every_profile_and_removes_volumes(
    fake: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project(fake, tmp_path).down()
    assert json.loads(capfd.readouterr().out)["args"] == [
        "--profile", "*", "down", "-v", "--remove-orphans",
    ]  # fmt: skip


def test_echo_prints_each_command_before_it_runs(
    fake: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project(fake, tmp_path, echo=True).build("model", "lb")
    assert capfd.readouterr().out.startswith("  $ scripts/compose build model lb\n")


def test_started_removes_leftovers_first_and_the_project_after_the_block(
    fake: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    p = project(fake, tmp_path)
    with pytest.raises(KeyError), p.started("lb"):
        raise KeyError("the measurement failed")
    calls = [json.loads(line)["args"] for line in capfd.readouterr().out.splitlines()]
    assert [c[2] if c[0] == "--profile" else c[0] for c in calls] == ["down", "up", "down"]


def test_a_failing_command_is_an_error_naming_it_with_its_output_when_kept(
    fake: Path, tmp_path: Path
) -> None:
    p = project(fake, tmp_path)
    with pytest.raises(compose.ComposeError, match="no such service") as info:
        p.run("fail", quiet=True)
    assert "compose fail failed (3) in project mf-unit" in str(info.value)
    assert "err: no such service" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert p.run("fail", check=False, quiet=True) == ""


def test_running_lists_container_ids(fake: Path, tmp_path: Path) -> None:
    assert project(fake, tmp_path).running("model") == ["abc", "def"]


def test_config_is_the_json_of_the_given_profiles(fake: Path, tmp_path: Path) -> None:
    cfg = project(fake, tmp_path).config("*")
    assert cfg["services"] == {"model": {"image": "m"}}
    assert cfg["args"] == ["--profile", "*", "config", "--format", "json"]


def test_config_with_defaults_hides_the_variables_compose_yaml_interpolates(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("ports: ['127.0.0.1:${LB_PORT:-8080}:8080']\nx: ${X}\n")
    assert compose.interpolated_variables(compose_file) == {"LB_PORT", "X"}
    monkeypatch.setenv("LB_PORT", "1234")
    monkeypatch.setenv("X", "from-the-caller")
    kept = compose.config(("dashboards",), compose=fake, compose_file=compose_file)
    assert (kept["env_lb"], kept["env_x"]) == ("1234", "from-the-caller")
    assert kept["args"][:2] == ["--profile", "dashboards"]
    clean = compose.config(defaults=True, compose=fake, compose_file=compose_file, X="set")
    assert (clean["env_lb"], clean["env_x"]) == (None, "set")


def test_the_default_compose_is_the_projects_own_entry_point() -> None:
    assert compose.COMPOSE.name == "compose" and compose.COMPOSE.parent.name == "scripts"
    assert compose.COMPOSE.is_file()
