"""Secure by default: one public entry on loopback, unprivileged read-only replicas."""

from __future__ import annotations

import subprocess

from tests.stack.stackctl import Stack


def _published(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for c in stack.inspect(stack.compose("ps", "-q", capture=True).split()):
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        bindings = c["HostConfig"].get("PortBindings") or {}
        out.setdefault(service, [])
        for port_bindings in bindings.values():
            for b in port_bindings or []:
                out[service].append((b["HostIp"], b["HostPort"]))
    return out


def test_only_the_load_balancer_and_prometheus_are_published_on_loopback(stack: Stack) -> None:
    published = {svc: ports for svc, ports in _published(stack).items() if ports}
    assert set(published) == {"lb", "prometheus"}
    lb_port = stack.lb_url.rsplit(":", 1)[1]
    prom_port = stack.prometheus_url.rsplit(":", 1)[1]
    assert published["lb"] == [("127.0.0.1", lb_port)]
    assert published["prometheus"] == [("127.0.0.1", prom_port)]


def test_replicas_run_unprivileged_on_a_read_only_root(stack: Stack) -> None:
    ids = stack.container_ids()
    assert ids
    for c in stack.inspect(ids):
        assert c["HostConfig"]["ReadonlyRootfs"] is True
        assert c["HostConfig"]["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in c["HostConfig"]["SecurityOpt"]
        uid = subprocess.run(
            ["docker", "exec", c["Id"], "python3", "-c", "import os; print(os.getuid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert uid != "0"
        write = subprocess.run(
            ["docker", "exec", c["Id"], "python3", "-c", "open('/app/x', 'w')"],
            capture_output=True,
            text=True,
        )
        assert write.returncode != 0
        assert "Read-only file system" in write.stderr or "Permission denied" in write.stderr


def test_replicas_are_only_on_the_internal_network(stack: Stack) -> None:
    for c in stack.inspect(stack.container_ids()):
        networks = c["NetworkSettings"]["Networks"]
        assert list(networks) == [f"{stack.project}_backend"]
    net = subprocess.run(
        ["docker", "network", "inspect", f"{stack.project}_backend", "-f", "{{.Internal}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert net == "true"


def test_other_containers_do_not_run_as_root(stack: Stack) -> None:
    for service in ("lb", "prometheus", "nginx-exporter"):
        for c in stack.inspect(stack.container_ids(service)):
            assert c["Config"]["User"] not in ("", "0", "root"), service
            assert c["HostConfig"]["ReadonlyRootfs"] is True, service


def test_every_container_is_bounded_and_rotates_its_log(stack: Stack) -> None:
    # The static check (scripts/check_compose.py) reads the compose file; this checks that the
    # engine really applied the bounds.
    containers = stack.inspect(stack.compose("ps", "-q", capture=True).split())
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in containers}
    assert services == {"model", "lb", "prometheus", "nginx-exporter"}
    for c in containers:
        host = c["HostConfig"]
        name = c["Name"]
        assert host["PidsLimit"] and host["PidsLimit"] > 0, name
        assert host["Memory"] > 0, name
        assert host["NanoCpus"] > 0, name
        assert host["LogConfig"]["Type"] == "json-file", name
        assert set(host["LogConfig"]["Config"]) >= {"max-size", "max-file"}, name


def test_prometheus_retention_is_bounded_in_time_and_size(stack: Stack) -> None:
    (prometheus,) = stack.inspect(stack.container_ids("prometheus"))
    args = prometheus["Args"]
    assert any(a.startswith("--storage.tsdb.retention.time=") for a in args), args
    assert "--storage.tsdb.retention.size=1GB" in args, args
