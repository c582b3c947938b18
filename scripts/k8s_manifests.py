"""`make k8s-manifests`: Kubernetes manifests generated from compose.yaml, validated offline.

Reads the same `compose config --format json` model as `make swarm-config` (the caller's
settings applied as `make up` would) and writes one multi-document file that `kubectl apply -f`
takes: a Deployment per service with the same images, environment, security settings and
limits, probes on the routes the containers' healthchecks use, Services named as the Compose
services (so nginx/upstream-sync and prometheus.yml resolve `model`, `lb`, `nginx-exporter`
unchanged), a PodDisruptionBudget and a HorizontalPodAutoscaler for the replicas, and
NetworkPolicies that let only the load balancer and Prometheus reach them. Every document is
validated against a pinned Kubernetes version with kubernetes-validate before it is written.

    python -m scripts.k8s_manifests [--out build/k8s/modelfleet.yaml] [--registry HOST[:PORT]]
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import yaml

from bench import ROOT, compose
from scripts.swarm_config import left_out, size_bytes, tmpfs_volume, write_atomically

DEFAULT_OUT = ROOT / "build" / "k8s" / "modelfleet.yaml"
#: The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.34.0"
PART_OF = "modelfleet"
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
#: What Prometheus reads from /etc/prometheus: its config, rules and console pages (not the
#: image's build files or the promtool tests).
PROMETHEUS_FILES = ("prometheus.yml", "rules/*.yml", "consoles/*", "console_libraries/*")
# fmt: off
#: The ports each service listens on, by name. Compose publishes some and reaches the rest by
#: container name; a Kubernetes Service must list them (the model's probe port is a setting).
PORTS: dict[str, dict[str, int | str]] = {
    "model": {"http": 8080, "probes": "MODELFLEET_PROBE_PORT"},
    "lb": {"http": 8080, "internal": 8081},  # internal: stub_status, upstream-sync's metrics
    "prometheus": {"http": 9090},
    "nginx-exporter": {"metrics": 9113},
}
#: The probes, on the routes the images' own healthchecks ask (healthcheck.sh, Dockerfiles).
#: (readiness, liveness) as (port name, HTTP path); no path: a TCP connect, as the exporter's.
PROBES: dict[str, tuple[tuple[str, str | None], tuple[str, str | None]]] = {
    "model": (("probes", "/readyz"), ("probes", "/healthz")),
    "lb": (("internal", "/lb-health"), ("internal", "/lb-health")),
    "prometheus": (("http", "/-/ready"), ("http", "/-/healthy")),
    "nginx-exporter": (("metrics", None), ("metrics", None)),
}
#: Who may connect to whom. Compose's backend network is `internal` and holds only the stack;
#: a cluster's pod network is open to every pod, so the policies say it instead.
INGRESS_FROM = {"model": ("lb", "prometheus"), "nginx-exporter": ("prometheus",)}
#: Services whose pods need no connection out at all (Compose: only on the internal network).
NO_EGRESS = ("model",)
# fmt: on
#: What the bind mounts of compose.yaml become: Prometheus's files a ConfigMap, the model
#: repository a claim (a cluster has no host directory every node shares).
BIND_MOUNTS = {"/etc/prometheus": "prometheus-config", "/opt/modelfleet/models": "model-repository"}
#: The user each image runs as: its Dockerfile's USER, numeric where Kubernetes needs it
#: (runAsNonRoot cannot check a user name). www-data is 33 in every Debian (base-passwd); the
#: prometheus user is created by its package with whatever id is free, so its pods run as
#: nobody, with fsGroup making the data volume theirs.
RUN_AS = {"model": 10001, "lb": 33, "prometheus": 65534, "nginx-exporter": 65534}
#: The replicas' autoscaling: CPU utilisation of their request, and the most replicas.
HPA_CPU_PERCENT = 70


def mebibytes(n: int) -> str:
    """A Kubernetes quantity in Mi, rounded up."""
    return f"{-(-n // (1 << 20))}Mi"


def labels(name: str) -> dict[str, str]:
    """The labels of a service's pods, and its selector."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def meta(name: str, **extra: Any) -> dict[str, Any]:
    """Object metadata: the name and labels every object of the stack carries."""
    return {"name": name, "labels": labels(name), **extra}


def ports(name: str, svc: dict[str, Any]) -> dict[str, int]:
    """The service's named ports, settings resolved from its environment."""
    env = svc.get("environment") or {}
    return {k: int(env[v]) if isinstance(v, str) else v for k, v in PORTS[name].items()}


def probe(port: str, path: str | None, hc: dict[str, Any]) -> dict[str, Any]:
    """A probe on `port` (an HTTP GET of `path`, or a TCP connect), timed as the healthcheck."""
    action: dict[str, Any] = (
        {"httpGet": {"path": path, "port": port}} if path else {"tcpSocket": {"port": port}}
    )
    return {
        **action,
        "periodSeconds": int(seconds(hc.get("interval", "5s"))),
        "timeoutSeconds": int(seconds(hc.get("timeout", "3s"))),
        "failureThreshold": int(hc.get("retries", 3)),
    }


def seconds(value: str | int | float) -> float:
    """Seconds of a Compose duration (`5s`, `1m30s`, `90s`) or a number of seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for amount, unit in re.findall(r"([\d.]+)(ms|s|m|h)", value):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def container(name: str, svc: dict[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The one container of a service's pods."""
    svc_ports = ports(name, svc)
    limits = (svc.get("deploy") or {}).get("resources", {}).get("limits", {})
    # Requests equal to limits: Guaranteed QoS (never evicted first under node pressure), and
    # the autoscaler's utilisation is then a share of what a replica may use.
    resources = {"cpu": str(limits["cpus"]), "memory": mebibytes(size_bytes(limits["memory"]))}
    out: dict[str, Any] = {"name": name, "image": svc["image"], "imagePullPolicy": "IfNotPresent"}
    if svc.get("entrypoint"):
        out["command"] = list(svc["entrypoint"])
    if svc.get("command"):
        out["args"] = list(svc["command"])
    env = svc.get("environment") or {}
    if env:
        out["env"] = [{"name": k, "value": str(v)} for k, v in sorted(env.items()) if v is not None]
    out["ports"] = [{"name": k, "containerPort": v} for k, v in svc_ports.items()]
    hc = svc.get("healthcheck") or {}
    (ready_port, ready_path), (live_port, live_path) = PROBES[name]
    out["readinessProbe"] = probe(ready_port, ready_path, hc)
    # Liveness restarts a container (Docker's healthcheck never does), so it waits twice as
    # long as readiness before it gives up on one.
    live = probe(live_port, live_path, hc)
    out["livenessProbe"] = {**live, "failureThreshold": 2 * live["failureThreshold"]}
    start_period = seconds(hc.get("start_period", 0))
    if start_period:
        # start_period: a slow start (libraries imported on busy cores) is not a failure.
        period = out["readinessProbe"]["periodSeconds"]
        out["startupProbe"] = {
            **copy.deepcopy(live),
            "failureThreshold": int(-(-start_period // period)),
        }
    out["resources"] = {"limits": resources, "requests": dict(resources)}
    no_new_privileges = "no-new-privileges:true" in (svc.get("security_opt") or [])
    out["securityContext"] = {
        "allowPrivilegeEscalation": not no_new_privileges,
        "readOnlyRootFilesystem": bool(svc.get("read_only")),
        "capabilities": {"drop": list(svc.get("cap_drop") or [])},
    }
    if mounts:
        out["volumeMounts"] = mounts
    return out


def volumes(svc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the container's mounts: tmpfs as memory-backed emptyDirs, the
    model repository and Prometheus's data as claims, Prometheus's files as a ConfigMap."""
    vols: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, entry in enumerate(svc.get("tmpfs") or []):
        tmpfs = tmpfs_volume(entry)[0]
        empty: dict[str, Any] = {"medium": "Memory"}
        if "tmpfs" in tmpfs:
            empty["sizeLimit"] = mebibytes(tmpfs["tmpfs"]["size"])
        vols.append({"name": f"tmpfs-{i}", "emptyDir": empty})
        mounts.append({"name": f"tmpfs-{i}", "mountPath": tmpfs["target"]})
    for volume in svc.get("volumes") or []:
        target = volume["target"]
        source: dict[str, Any]
        if volume["type"] == "bind" and target not in BIND_MOUNTS:
            raise ValueError(f"bind mount at {target}: no Kubernetes volume for it (BIND_MOUNTS)")
        name = BIND_MOUNTS.get(target) or volume["source"]
        if name == "prometheus-config":
            source = {"configMap": {"name": name, "items": config_items()}}
        else:
            source = {"persistentVolumeClaim": {"claimName": name}}
            if volume.get("read_only"):
                source["persistentVolumeClaim"]["readOnly"] = True
        vols.append({"name": name, **source})
        mounts.append(
            {"name": name, "mountPath": target, "readOnly": bool(volume.get("read_only"))}
        )
    return vols, mounts


def prometheus_files() -> dict[str, Path]:
    """Prometheus's files by ConfigMap key (a key cannot hold `/`)."""
    files = sorted(p for g in PROMETHEUS_FILES for p in PROMETHEUS_DIR.glob(g) if p.is_file())
    return {str(p.relative_to(PROMETHEUS_DIR)).replace("/", "_"): p for p in files}


def config_items() -> list[dict[str, str]]:
    """The ConfigMap's keys at their paths under /etc/prometheus, as in the repository."""
    return [
        {"key": k, "path": str(p.relative_to(PROMETHEUS_DIR))}
        for k, p in prometheus_files().items()
    ]


def deployment(name: str, svc: dict[str, Any]) -> dict[str, Any]:
    """A service's Deployment: replicas, rolling update, security context, grace period."""
    vols, mounts = volumes(svc)
    uid = RUN_AS[name]
    pod: dict[str, Any] = {
        # No workload here talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        # Compose's `init`: the pause container becomes PID 1 and reaps orphans.
        "shareProcessNamespace": bool(svc.get("init")),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(name, svc, mounts)],
    }
    if "stop_grace_period" in svc:
        pod["terminationGracePeriodSeconds"] = int(seconds(svc["stop_grace_period"]))
    if vols:
        pod["volumes"] = vols
    writes_a_claim = any(not v.get("persistentVolumeClaim", {"readOnly": True}).get("readOnly")
                         for v in vols)  # fmt: skip
    # One replica more, never one fewer, while pods are replaced; a claim written to is
    # ReadWriteOnce and cannot be in two pods at once, so its one pod is replaced in place.
    strategy = (
        {"type": "Recreate"}
        if writes_a_claim
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )
    spec = {
        "replicas": int((svc.get("deploy") or {}).get("replicas") or 1),
        "selector": {"matchLabels": labels(name)},
        "strategy": strategy,
        "template": {"metadata": {"labels": labels(name)}, "spec": pod},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name), "spec": spec}


def k8s_service(name: str, svc: dict[str, Any]) -> dict[str, Any]:
    """The Service named as the Compose service. The replicas' is headless and lists every
    pod, ready or not, as Docker's DNS does: upstream-sync probes readiness itself, and
    Prometheus scrapes a replica that is not ready yet."""
    spec: dict[str, Any] = {
        "selector": labels(name),
        "ports": [
            {"name": k, "port": v, "targetPort": k, "protocol": "TCP"}
            for k, v in ports(name, svc).items()
        ],
    }
    if name == "model":
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": True}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": spec}


def network_policy(name: str, peers: tuple[str, ...], egress: bool) -> dict[str, Any]:
    """Only `peers`' pods may connect to `name`'s; without `egress`, its pods connect nowhere."""
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": labels(name)},
        "policyTypes": ["Ingress"] if egress else ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": labels(p)}} for p in peers]}],
    }
    if not egress:
        spec["egress"] = []
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(f"{name}-ingress"),
        "spec": spec,
    }


def claims(model: dict[str, Any], repository_size: str) -> list[dict[str, Any]]:
    """The claims: the model repository (read by every replica) and Prometheus's data."""
    command = " ".join(model["services"]["prometheus"].get("command") or [])
    retention = re.search(r"--storage\.tsdb\.retention\.size=(\S+)", command)
    # Twice the retention bound: the WAL and compactions come on top of the blocks it counts.
    data = mebibytes(2 * size_bytes(retention[1] if retention else "1GB"))
    out = []
    for name, mode, size in (
        ("model-repository", "ReadOnlyMany", repository_size),
        ("prometheus-data", "ReadWriteOnce", data),
    ):
        spec = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": meta(name),
                "spec": spec,
            }
        )
    return out


def manifests(
    model: dict[str, Any],
    *,
    registry: str = "",
    max_replicas: int = 10,
    repository_size: str = "1Gi",
) -> list[dict[str, Any]]:
    """Every object of the stack, from a `compose config --format json` model."""
    services = {n: s for n, s in sorted(model["services"].items()) if not s.get("profiles")}
    if registry:
        services = {
            n: {**s, "image": f"{registry.rstrip('/')}/{s['image']}"} for n, s in services.items()
        }
    data = {k: p.read_text() for k, p in prometheus_files().items()}
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("prometheus-config"),
            "data": data,
        },
        *claims(model, repository_size),
    ]
    for name, svc in services.items():
        out += [deployment(name, svc), k8s_service(name, svc)]
    for name, peers in INGRESS_FROM.items():
        out.append(network_policy(name, peers, egress=name not in NO_EGRESS))
    replicas = int(services["model"]["deploy"]["replicas"])
    out.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta("model"),
            # A drain takes one replica at a time, as a rollout does.
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels("model")}},
        }
    )
    metric = {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": HPA_CPU_PERCENT},
    }
    out.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta("model"),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
                "minReplicas": replicas,
                "maxReplicas": max(max_replicas, replicas),
                "metrics": [{"type": "Resource", "resource": metric}],
            },
        }
    )
    return out


class InvalidManifest(ValueError):
    """A document the pinned Kubernetes version's schemas refuse."""


def validate(documents: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> None:
    """Raise InvalidManifest for the first document the schemas of Kubernetes `version`
    refuse; strict: a property that version does not know is refused too."""
    for doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.utils.SchemaNotFoundError:
            name = f"{doc.get('apiVersion')} {doc.get('kind')}"
            raise InvalidManifest(f"{name}: not a kind of Kubernetes {version}") from None
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(document)"
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            raise InvalidManifest(f"{name}: {where}: {e.message}") from None


def gaps(model: dict[str, Any]) -> list[str]:
    """What the manifests cannot keep of the Compose model, one line a gap."""
    return [
        "pids limits: Kubernetes has none per container; the kubelet's podPidsLimit bounds pods",
        "log rotation (json-file 3 x 10m): the kubelet's containerLogMaxSize/MaxFiles apply",
        "published ports on 127.0.0.1: the Services are ClusterIP, reached by "
        "`kubectl port-forward` or an Ingress of yours",
        "tmpfs uid/gid/mode: an emptyDir is world-writable, in a pod of one container",
        "the model repository: a ReadOnlyMany claim you fill (make rollout drives Compose only)",
        "left out, Kubernetes has no profiles: " + (", ".join(left_out(model)) or "nothing"),
    ]


def render(documents: list[dict[str, Any]], remaining: list[str]) -> str:
    """The file's text: a header saying what it is and what it lacks, then the documents."""
    header = [
        "GENERATED by `make k8s-manifests` (scripts/k8s_manifests.py) from compose.yaml with the",
        "settings of its environment: do not edit. Apply: kubectl apply -n NAMESPACE -f FILE",
        f"Validated against Kubernetes {KUBERNETES_VERSION} (kubernetes-validate, strict).",
        "Gaps:",
        *(f"- {gap}" for gap in remaining),
    ]
    body: str = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=100)
    return "".join(f"# {line}\n" for line in header) + body


def main(argv: list[str] | None = None) -> int:
    """Write the validated manifests; print their path and the gaps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    parser.add_argument("--registry", default="", help="image registry prefix (HOST[:PORT])")
    parser.add_argument("--max-replicas", type=int, default=10, help="autoscaler's bound")
    parser.add_argument("--repository-size", default="1Gi", help="model repository claim")
    args = parser.parse_args(argv)
    model = compose.config(("*",), project="modelfleet-k8s")
    docs = manifests(
        model,
        registry=args.registry,
        max_replicas=args.max_replicas,
        repository_size=args.repository_size,
    )
    try:
        validate(docs)
    except InvalidManifest as e:
        print(f"k8s_manifests: refused by Kubernetes {KUBERNETES_VERSION}: {e}", file=sys.stderr)
        return 1
    remaining = gaps(model)
    write_atomically(args.out, render(docs, remaining))
    print(f"k8s_manifests: wrote {args.out} ({len(docs)} objects, valid for {KUBERNETES_VERSION})")
    for gap in remaining:
        print(f"k8s_manifests: gap: {gap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
