"""scripts/swarm_config.py (`make swarm-config`): the stack file replaces what Swarm ignores with
what it supports, names every gap that remains, and `docker stack config` accepts it."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import compose
from scripts import swarm_config


def compose_model() -> dict[str, Any]:
    """A small `compose config --format json` model, shaped as compose-go writes it."""
    hardening = {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "init": True,
        "restart": "unless-stopped",
        "command": None,
    }
    return {
        "name": "modelfleet-config",
        "x-hardening": hardening,
        "services": {
            "model": {
                **hardening,
                "image": "modelfleet/model-server:dev",
                "build": {"context": "/src", "dockerfile": "services/model-server/Dockerfile"},
                "deploy": {
                    "replicas": 3,
                    "resources": {"limits": {"cpus": 1, "memory": "536870912", "pids": 256}},
                    "placement": {},
                },
                "tmpfs": ["/tmp:uid=10001,gid=10001,mode=1770,size=64m"],
                "volumes": [
                    {
                        "type": "bind",
                        "source": "/src/models",
                        "target": "/opt/modelfleet/models",
                        "read_only": True,
                        "bind": {"create_host_path": True},
                    }
                ],
                "networks": {"backend": None},
            },
            "lb": {
                **hardening,
                "image": "modelfleet/nginx:dev",
                "container_name": "the-lb",
                "environment": {"UPSTREAM_SERVICE": "model", "UPSTREAM_PORT": "8080"},
                "tmpfs": ["/var/lib/nginx:mode=1777,size=8m"],
                "ports": [
                    {
                        "mode": "ingress",
                        "host_ip": "127.0.0.1",
                        "target": 8080,
                        "published": "8080",
                        "protocol": "tcp",
                    }
                ],
                "depends_on": {"model": {"condition": "service_healthy", "required": True}},
                "networks": {"frontend": None, "backend": None},
            },
            "grafana": {
                **hardening,
                "image": "grafana/grafana:12.0.2",
                "profiles": ["dashboards"],
                "secrets": [{"source": "admin_password"}],
                "volumes": [{"type": "volume", "source": "grafana-data", "target": "/g"}],
                "networks": {"frontend": None},
            },
        },
        "networks": {
            "backend": {"name": "modelfleet-config_backend", "ipam": {}, "internal": True},
            "frontend": {"name": "modelfleet-config_frontend", "ipam": {}},
        },
        "volumes": {"grafana-data": {"name": "modelfleet-config_grafana-data"}},
        "secrets": {"admin_password": {"name": "x_admin_password", "file": "/src/pw"}},
    }


@pytest.fixture
def stack() -> dict[str, Any]:
    return swarm_config.stack_file(compose_model())


def test_compose_only_keys_are_not_in_the_stack_file(stack: dict[str, Any]) -> None:
    assert stack["version"] == "3.9"
    assert set(stack) == {"version", "services", "networks"}
    for service in stack["services"].values():
        assert not {"build", "container_name", "restart", "security_opt", "tmpfs"} & set(service)
        assert not {"depends_on", "profiles", "command"} & set(service)


def test_profiled_services_and_what_only_they_use_are_left_out(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == {"lb", "model"}
    assert swarm_config.left_out(compose_model()) == ["grafana (dashboards)"]


def test_restart_becomes_a_restart_policy_that_never_gives_up(stack: dict[str, Any]) -> None:
    policy = stack["services"]["model"]["deploy"]["restart_policy"]
    assert policy == {"condition": "any", "delay": "5s"}
    assert swarm_config.restart_policy("on-failure:3") == {
        "condition": "on-failure",
        "delay": "5s",
        "max_attempts": 3,
    }
    assert swarm_config.restart_policy("no") == {"condition": "none"}


def test_a_restart_policy_written_in_deploy_is_kept() -> None:
    model = compose_model()
    model["services"]["model"]["deploy"]["restart_policy"] = {"condition": "on-failure"}
    stack = swarm_config.stack_file(model)
    assert stack["services"]["model"]["deploy"]["restart_policy"] == {"condition": "on-failure"}


def test_tmpfs_entries_become_tmpfs_volumes_with_their_size(stack: dict[str, Any]) -> None:
    model_volumes = stack["services"]["model"]["volumes"]
    assert {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 64 << 20}} in model_volumes
    assert stack["services"]["lb"]["volumes"] == [
        {"type": "tmpfs", "target": "/var/lib/nginx", "tmpfs": {"size": 8 << 20}}
    ]


def test_bind_mounts_stay_with_their_absolute_source(stack: dict[str, Any]) -> None:
    bind = stack["services"]["model"]["volumes"][0]
    assert bind == {
        "type": "bind",
        "source": "/src/models",
        "target": "/opt/modelfleet/models",
        "read_only": True,
    }


def test_published_ports_are_host_mode_without_an_address(stack: dict[str, Any]) -> None:
    assert stack["services"]["lb"]["ports"] == [
        {"target": 8080, "protocol": "tcp", "published": 8080, "mode": "host"}
    ]


def test_services_use_dns_round_robin_and_the_lb_resolves_the_tasks(
    stack: dict[str, Any],
) -> None:
    assert {s["deploy"]["endpoint_mode"] for s in stack["services"].values()} == {"dnsrr"}
    assert stack["services"]["lb"]["environment"]["UPSTREAM_SERVICE"] == "tasks.model"


def test_hardening_and_bounds_are_kept(stack: dict[str, Any]) -> None:
    model = stack["services"]["model"]
    assert model["read_only"] is True
    assert model["cap_drop"] == ["ALL"]
    assert model["init"] is True
    assert model["deploy"]["replicas"] == 3
    # The stack schema refuses a number of CPUs that is not a string.
    assert model["deploy"]["resources"] == {
        "limits": {"cpus": "1", "memory": "536870912", "pids": 256}
    }


def test_networks_are_overlays_and_only_the_outer_one_attachable(stack: dict[str, Any]) -> None:
    assert stack["networks"] == {
        "backend": {"internal": True, "driver": "overlay"},
        "frontend": {"driver": "overlay", "attachable": True},
    }


def test_the_compose_model_is_left_as_it_was() -> None:
    model = compose_model()
    before = copy.deepcopy(model)
    swarm_config.stack_file(model)
    swarm_config.gaps(model)
    assert model == before


def test_each_remaining_gap_is_named_with_its_services() -> None:
    found = swarm_config.gaps(compose_model())
    assert found == [
        "lb, model: security_opt (no-new-privileges:true): not applied by docker stack deploy",
        "lb: port 8080: published on 127.0.0.1 only by Compose; a host-mode port binds every "
        "interface of the node",
        "model: tmpfs /tmp: uid=10001,gid=10001,mode=1770 dropped (a Swarm tmpfs takes a size "
        "only: root-owned, with the mode of the image's directory: 1777 in these images)",
        "model: bind mount /src/models: must exist on every node that runs the task",
    ]


def test_a_key_without_a_swarm_equivalent_is_a_gap_not_an_error() -> None:
    model = compose_model()
    model["services"]["model"]["shm_size"] = "64m"
    assert "model: `shm_size`: no Swarm equivalent, left out" in swarm_config.gaps(model)
    assert "shm_size" not in swarm_config.stack_file(model)["services"]["model"]


def test_an_unreadable_tmpfs_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unreadable size"):
        swarm_config.tmpfs_volume("/tmp:size=lots")


def test_the_file_says_it_is_generated_and_lists_the_gaps(tmp_path: Path) -> None:
    model = compose_model()
    text = swarm_config.render(swarm_config.stack_file(model), ["grafana (dashboards)"], ["a gap"])
    header = text.split("\nversion:")[0].splitlines()
    assert all(line.startswith("#") for line in header)
    assert "GENERATED" in header[0]
    assert "# - a gap" in header
    assert "grafana (dashboards)" in text
    out = tmp_path / "swarm" / "stack.yaml"
    swarm_config.write_atomically(out, text)
    swarm_config.write_atomically(out, text)
    assert yaml.safe_load(out.read_text()) == swarm_config.stack_file(model)
    assert [p.name for p in out.parent.iterdir()] == ["stack.yaml"]


def require_docker_cli() -> None:
    """Skip when the docker CLI is missing (`docker stack config` needs no engine nor swarm);
    on CI (CI=true), fail."""
    if shutil.which("docker") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the docker CLI is mandatory on CI, but it is not installed")
        pytest.skip("the docker CLI is not installed")


def test_docker_stack_config_accepts_the_file_from_compose_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_docker_cli()
    # compose.yaml's own defaults, whatever the caller's environment sets.
    for name in compose.interpolated_variables():
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "stack.yaml"
    assert swarm_config.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "no-new-privileges" in printed
    proc = subprocess.run(
        ["docker", "stack", "config", "-c", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    # Nothing written is dropped on the way (a key the loader ignores would be missing here).
    assert config == yaml.safe_load(out.read_text())
    assert set(config["services"]) == {"model", "lb", "prometheus", "nginx-exporter"}
    model = config["services"]["model"]
    assert model["read_only"] is True
    assert model["cap_drop"] == ["ALL"]
    assert model["deploy"]["endpoint_mode"] == "dnsrr"
    assert model["deploy"]["resources"]["limits"] == {
        "cpus": "1",
        "memory": str(512 << 20),
        "pids": 256,
    }
    lb = config["services"]["lb"]
    assert lb["ports"] == [{"mode": "host", "target": 8080, "published": 8080, "protocol": "tcp"}]
    assert lb["environment"]["UPSTREAM_SERVICE"] == "tasks.model"
