"""scripts/check_compose.py (run by `make lint`): it passes the project's compose.yaml and catches
each thing it is meant to catch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.loadgen.conftest import load_script

ROOT = Path(__file__).resolve().parents[2]
check_compose = load_script("check_compose")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return check_compose.compose_config()


def test_every_service_of_every_profile_is_checked_and_passes(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "model",
        "lb",
        "prometheus",
        "nginx-exporter",
        "loadgen",
        "grafana",
    }
    assert check_compose.violations(config) == []


def test_the_defaults_are_checked_not_the_callers_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LB_BIND", "0.0.0.0")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "someone-elses")
    config = check_compose.compose_config()
    assert config["services"]["lb"]["ports"][0]["host_ip"] == "127.0.0.1"


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(service: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        node = service
        for parent in parents:
            node = node[parent]
        del node[key]

    return mutate


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(service: dict[str, Any]) -> None:
        service[key] = value

    return mutate


def _publish_on(host_ip: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(service: dict[str, Any]) -> None:
        port = {"mode": "ingress", "target": 8080, "published": "8080", "protocol": "tcp"}
        if host_ip is not None:
            port["host_ip"] = host_ip
        service["ports"] = [port]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop("deploy.resources.limits.memory"), "no memory limit"),
        (_drop("deploy.resources.limits.cpus"), "no CPU limit"),
        (_drop("deploy.resources.limits.pids"), "no process limit"),
        (_drop("deploy"), "no memory limit"),
        (_set("read_only", False), "writable root"),
        (_drop("cap_drop"), "capabilities not all dropped"),
        (_set("cap_drop", ["NET_RAW"]), "capabilities not all dropped"),
        (_set("cap_add", ["NET_ADMIN"]), "capabilities added"),
        (_set("privileged", True), "privileged"),
        (_drop("security_opt"), "no-new-privileges"),
        (_drop("logging"), "no log rotation"),
        (_set("logging", {"driver": "json-file", "options": {"max-size": "10m"}}), "log rotation"),
        (_set("logging", {"driver": "syslog", "options": {}}), "no log rotation"),
        (_set("network_mode", "host"), "host network"),
        (_publish_on("0.0.0.0"), "published on 0.0.0.0"),
        (_publish_on(None), "published on every interface"),
    ],
)
@pytest.mark.parametrize("service", ["model", "grafana"])
def test_each_rule_is_enforced(
    config: dict[str, Any],
    service: str,
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    broken = copy.deepcopy(config)
    mutate(broken["services"][service])
    problems = check_compose.violations(broken)
    assert any(p.startswith(f"{service}: ") and expected in p for p in problems), problems


def test_a_listed_exception_allows_a_writable_root(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = copy.deepcopy(config)
    broken["services"]["model"]["read_only"] = False
    monkeypatch.setattr(check_compose, "READ_WRITE_ROOT", {"model": "a reason"})
    assert check_compose.violations(broken) == []


def test_the_command_fails_naming_the_service(config: dict[str, Any], tmp_path: Path) -> None:
    broken = copy.deepcopy(config)
    del broken["services"]["prometheus"]["logging"]
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(broken))
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.check_compose", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "prometheus: no log rotation" in proc.stderr


def test_main_names_each_violation_or_counts_the_bounded_services(
    config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean, broken = tmp_path / "clean.json", tmp_path / "broken.json"
    clean.write_text(json.dumps(config))
    bad = copy.deepcopy(config)
    bad["services"]["lb"]["cap_drop"] = []
    broken.write_text(json.dumps(bad))
    assert check_compose.main([str(clean)]) == 0
    assert f"{len(config['services'])} services bounded and hardened" in capsys.readouterr().out
    assert check_compose.main([str(broken)]) == 1
    assert "check_compose: lb: capabilities not all dropped" in capsys.readouterr().err
