"""scripts/k8s_manifests.py (`make k8s-manifests`): Kubernetes manifests from compose.yaml that
a pinned Kubernetes version accepts, with the stack's security, limits, probes, discovery and
the policies that keep the replicas reachable only from the load balancer and Prometheus."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import ROOT, compose
from scripts import k8s_manifests as k8s

SERVICES = {"model", "lb", "prometheus", "nginx-exporter"}


@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    """compose.yaml with its own defaults, every profile."""
    return compose.config(("*",), project="modelfleet-k8s", defaults=True)


@pytest.fixture(scope="module")
def docs(compose_model: dict[str, Any]) -> list[dict[str, Any]]:
    return k8s.manifests(compose_model)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in sorted(SERVICES):
        (c,) = pod(docs, name)["containers"]
        yield name, c


def test_every_document_is_valid_for_the_pinned_kubernetes_version(
    docs: list[dict[str, Any]],
) -> None:
    k8s.validate(docs)
    kinds = {d["kind"] for d in docs}
    assert kinds >= {
        "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "HorizontalPodAutoscaler", "ConfigMap", "PersistentVolumeClaim",
    }  # fmt: skip


def test_a_property_kubernetes_does_not_know_is_refused_with_its_place(
    docs: list[dict[str, Any]],
) -> None:
    bad = copy.deepcopy(find(docs, "Deployment", "model"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(k8s.InvalidManifest, match=r"Deployment/model: spec\.template\.spec"):
        k8s.validate([bad])
    with pytest.raises(k8s.InvalidManifest, match="not a kind of Kubernetes"):
        k8s.validate([{"apiVersion": "example.com/v1", "kind": "Model", "metadata": {}}])


def test_each_compose_service_is_a_deployment_and_a_service_of_its_name(
    docs: list[dict[str, Any]], compose_model: dict[str, Any]
) -> None:
    for name in SERVICES:
        deployment = find(docs, "Deployment", name)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["template"]["metadata"]["labels"] == selector
        assert find(docs, "Service", name)["spec"]["selector"] == selector
    # Profiled services (Grafana, Locust) are left out, as the gaps say.
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"} == SERVICES
    assert "grafana (dashboards)" in " ".join(k8s.gaps(compose_model))
    assert find(docs, "Deployment", "model")["spec"]["replicas"] == 3


def test_images_environment_and_commands_are_compose_s(
    docs: list[dict[str, Any]], compose_model: dict[str, Any]
) -> None:
    for name, c in containers(docs):
        svc = compose_model["services"][name]
        assert c["image"] == svc["image"]
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        assert env == {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        assert c.get("args") == svc.get("command")
        assert c.get("command") == svc.get("entrypoint")
    registry = k8s.manifests(compose_model, registry="registry.example:5000/")
    for _, c in containers(registry):
        assert c["image"].startswith("registry.example:5000/modelfleet/")


def test_pods_run_hardened_as_on_compose(docs: list[dict[str, Any]]) -> None:
    for name, c in containers(docs):
        spec = pod(docs, name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == k8s.RUN_AS[name] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["shareProcessNamespace"] is True  # Compose's init: true
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def test_the_images_numeric_users_are_the_ones_the_pods_run_as() -> None:
    user = re.search(r"^USER (\d+)", (ROOT / "services/model-server/Dockerfile").read_text(), re.M)
    assert user is not None and int(user[1]) == k8s.RUN_AS["model"]
    assert "USER www-data" in (ROOT / "nginx/Dockerfile").read_text()
    assert k8s.RUN_AS["lb"] == 33  # Debian's base-passwd: www-data is always 33


def test_limits_are_compose_s_and_requested_in_full(
    docs: list[dict[str, Any]], compose_model: dict[str, Any]
) -> None:
    for name, c in containers(docs):
        limits = compose_model["services"][name]["deploy"]["resources"]["limits"]
        assert float(c["resources"]["limits"]["cpu"]) == float(limits["cpus"])
        assert c["resources"]["limits"]["memory"] == f"{int(limits['memory']) >> 20}Mi"
        assert c["resources"]["requests"] == c["resources"]["limits"]
    assert "podPidsLimit" in " ".join(k8s.gaps(compose_model))


def test_settings_flow_through_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    model = compose.config(
        ("*",), project="modelfleet-k8s", defaults=True, REPLICAS="5", MODEL_MEMORY="1G",
        MODELFLEET_PROBE_PORT="9000",
    )  # fmt: skip
    docs = k8s.manifests(model, max_replicas=4)
    assert find(docs, "Deployment", "model")["spec"]["replicas"] == 5
    hpa = find(docs, "HorizontalPodAutoscaler", "model")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (5, 5)  # never below the fleet
    (c,) = pod(docs, "model")["containers"]
    assert c["resources"]["limits"]["memory"] == "1024Mi"
    assert {"name": "probes", "containerPort": 9000} in c["ports"]
    k8s.validate(docs)


def test_probes_ask_the_routes_of_the_images_own_healthchecks(docs: list[dict[str, Any]]) -> None:
    healthchecks = {
        "model": (ROOT / "services/model-server/healthcheck.sh").read_text(),
        "lb": (ROOT / "nginx/Dockerfile").read_text(),
        "prometheus": (ROOT / "monitoring/prometheus/Dockerfile").read_text(),
    }
    for name, c in containers(docs):
        ports = {p["name"] for p in c["ports"]}
        for kind in ("readinessProbe", "livenessProbe"):
            action = c[kind].get("httpGet") or c[kind]["tcpSocket"]
            assert action["port"] in ports
        if name in healthchecks:
            assert c["readinessProbe"]["httpGet"]["path"] in healthchecks[name]
    (model,) = pod(docs, "model")["containers"]
    assert model["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert model["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    # Compose's start_period (90 s) without restarts: 18 checks 5 s apart.
    assert model["startupProbe"]["failureThreshold"] * model["startupProbe"]["periodSeconds"] == 90


def test_the_names_nginx_and_prometheus_resolve_are_services_with_those_ports(
    docs: list[dict[str, Any]], compose_model: dict[str, Any]
) -> None:
    service_ports = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for d in docs
        if d["kind"] == "Service"
    }
    config = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for s in job.get("static_configs", [])
               for t in s["targets"]]  # fmt: skip
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "localhost" or int(port) in service_ports[host], target
    (sd,) = [
        job["dns_sd_configs"][0] for job in config["scrape_configs"] if job["job_name"] == "model"
    ]
    assert sd["port"] in service_ports[sd["names"][0]]
    upstream = compose_model["services"]["lb"]["environment"]
    assert int(upstream["UPSTREAM_PORT"]) in service_ports[upstream["UPSTREAM_SERVICE"]]
    scrape_uri = " ".join(compose_model["services"]["nginx-exporter"]["command"])
    assert "//lb:8081/" in scrape_uri and 8081 in service_ports["lb"]


def test_the_replicas_service_is_headless_and_lists_pods_before_they_are_ready(
    docs: list[dict[str, Any]],
) -> None:
    spec = find(docs, "Service", "model")["spec"]
    # Like Docker's DNS: upstream-sync probes readiness itself; Prometheus scrapes a starting one.
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    for name in SERVICES - {"model"}:
        assert "clusterIP" not in find(docs, "Service", name)["spec"]  # ClusterIP, not exposed


def test_only_the_load_balancer_and_prometheus_reach_the_replicas(
    docs: list[dict[str, Any]],
) -> None:
    policy = find(docs, "NetworkPolicy", "model-ingress")["spec"]
    assert (
        policy["podSelector"]["matchLabels"]
        == find(docs, "Deployment", "model")["spec"]["selector"]["matchLabels"]
    )
    (rule,) = policy["ingress"]
    peers = [p["podSelector"]["matchLabels"] for p in rule["from"]]
    assert peers == [find(docs, "Deployment", n)["spec"]["selector"]["matchLabels"]
                     for n in ("lb", "prometheus")]  # fmt: skip
    # Compose's backend network is internal: the replicas connect nowhere.
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []


def test_a_disruption_budget_and_an_autoscaler_keep_the_fleet(docs: list[dict[str, Any]]) -> None:
    selector = find(docs, "Deployment", "model")["spec"]["selector"]
    assert find(docs, "PodDisruptionBudget", "model")["spec"] == {
        "maxUnavailable": 1,
        "selector": selector,
    }
    hpa = find(docs, "HorizontalPodAutoscaler", "model")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "model"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    strategy = find(docs, "Deployment", "model")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_prometheus_gets_its_config_rules_and_consoles_and_a_volume_of_its_own(
    docs: list[dict[str, Any]],
) -> None:
    config = find(docs, "ConfigMap", "prometheus-config")
    rules = sorted((ROOT / "monitoring/prometheus/rules").glob("*.yml"))
    assert rules and all(config["data"][f"rules_{r.name}"] == r.read_text() for r in rules)
    assert "prometheus.yml" in config["data"]
    assert sum(len(v) for v in config["data"].values()) < 1 << 20  # a ConfigMap's bound
    (volume,) = [v for v in pod(docs, "prometheus")["volumes"] if "configMap" in v]
    paths = {i["path"] for i in volume["configMap"]["items"]}
    assert {"prometheus.yml", "rules/alerts.yml", "consoles/index.html"} - paths == set()
    assert all((ROOT / "monitoring/prometheus" / p).is_file() for p in paths)
    assert not any(p.startswith("tests/") for p in paths)
    claim = find(docs, "PersistentVolumeClaim", "prometheus-data")["spec"]
    assert claim["resources"]["requests"]["storage"] == "2048Mi"  # twice the 1GB retention
    # ReadWriteOnce: the one pod is replaced in place.
    assert find(docs, "Deployment", "prometheus")["spec"]["strategy"] == {"type": "Recreate"}


def test_tmpfs_mounts_are_memory_backed_with_their_size(docs: list[dict[str, Any]]) -> None:
    spec = pod(docs, "model")
    (tmp,) = [v for v in spec["volumes"] if "emptyDir" in v]
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/tmp"]["name"] == tmp["name"]
    assert mounts["/opt/modelfleet/models"]["readOnly"] is True


def test_a_bind_mount_without_a_kubernetes_volume_is_refused(
    compose_model: dict[str, Any],
) -> None:
    model = copy.deepcopy(compose_model)
    model["services"]["lb"]["volumes"] = [{"type": "bind", "source": "/x", "target": "/etc/x"}]
    with pytest.raises(ValueError, match="bind mount at /etc/x"):
        k8s.manifests(model)


def test_main_writes_a_file_kubectl_reads_and_prints_the_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in compose.interpolated_variables():
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "k8s" / "modelfleet.yaml"
    assert k8s.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "gap: pids limits" in printed
    text = out.read_text()
    assert text.startswith("# GENERATED") and "&id" not in text  # no YAML aliases
    written = list(yaml.safe_load_all(text))
    k8s.validate(written)
    assert [p.name for p in out.parent.iterdir()] == ["modelfleet.yaml"]


def test_sizes_and_durations_read_as_docker_reads_them() -> None:
    assert k8s.size_bytes("512M") == 512 << 20
    assert k8s.size_bytes("1GB") == 1 << 30
    assert k8s.size_bytes(536870912) == 512 << 20
    assert k8s.seconds("1m30s") == 90
    with pytest.raises(ValueError, match="unreadable size"):
        k8s.size_bytes("lots")
