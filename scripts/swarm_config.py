"""`make swarm-config`: a Docker Swarm stack file generated from compose.yaml.

Reads `scripts/compose config --format json` (through bench.compose, every profile, the settings
of the caller's environment as `make up` would use them) and writes a stack file that
`docker stack config` accepts and `docker stack deploy` applies without "Ignoring unsupported
options". What Swarm ignores is replaced by what it supports; what it cannot express is left out
and listed as a gap, in the file's header and on stdout.

    python -m scripts.swarm_config [--out build/swarm/stack.yaml]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import tempfile
from collections import defaultdict
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import yaml

from bench import ROOT, compose

DEFAULT_OUT = ROOT / "build" / "swarm" / "stack.yaml"
#: The oldest stack file format whose schema takes deploy.resources.limits.pids (3.8 refuses it).
VERSION = "3.9"
# fmt: off
#: Service keys that docker/cli's stack loader converts as Compose means them.
PASS_THROUGH = {
    "cap_add", "cap_drop", "command", "configs", "dns", "dns_search", "entrypoint",
    "environment", "extra_hosts", "healthcheck", "hostname", "image", "init", "labels",
    "logging", "networks", "read_only", "secrets", "stop_grace_period", "stop_signal",
    "sysctls", "tty", "stdin_open", "ulimits", "user", "working_dir",
}
#: Keys handled below, or left out without loss: images are built before a deploy, Swarm has no
#: fixed container names, and it starts services in no order (upstream-sync waits for replicas).
HANDLED = {
    "build", "container_name", "depends_on", "deploy", "ports", "profiles", "restart",
    "security_opt", "tmpfs", "volumes",
}
# fmt: on
#: Swarm's fixed pause between restarts: it has no growing back-off like the Docker daemon's.
RESTART_DELAY = "5s"
#: The options every Swarm tmpfs has: Swarm sets its size only, so it is root's, with the mode of
#: the image's directory it covers (the images make theirs 1777, or Swarm's would be 0755).
SWARM_TMPFS = {("uid", ""), ("gid", ""), ("mode", "1777")}
#: Binary multiples of Docker's tmpfs sizes (go-units RAMInBytes).
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size_bytes(value: str | int) -> int:
    """Bytes of a Docker or Prometheus size (`64m`, `512M`, `1GB`, `536870912`): binary
    multiples, as go-units RAMInBytes reads them."""
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)i?b?", str(value).strip().lower())
    if match is None:
        raise ValueError(f"unreadable size {value!r}")
    return int(match[1]) * UNITS[match[2]]


def restart_policy(restart: str) -> dict[str, Any] | None:
    """deploy.restart_policy for a Compose `restart` value; None: Swarm's default (any)."""
    name, _, count = restart.partition(":")
    if name == "no":
        return {"condition": "none"}
    if name == "on-failure":
        policy: dict[str, Any] = {"condition": "on-failure", "delay": RESTART_DELAY}
        if count:
            policy["max_attempts"] = int(count)
        return policy
    if name in ("always", "unless-stopped"):
        # No max_attempts: once reached, swarmkit never restarts that replica again (until the
        # service is updated), which is not back-off but a silently smaller fleet.
        return {"condition": "any", "delay": RESTART_DELAY}
    return None


def tmpfs_volume(entry: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A `tmpfs: [PATH:OPTIONS]` entry as a tmpfs volume, and the options Swarm cannot take."""
    target, _, options = entry.partition(":")
    opts = dict(o.partition("=")[::2] for o in options.split(",") if o)
    volume: dict[str, Any] = {"type": "tmpfs", "target": target}
    # What a Swarm tmpfs is anyway is no loss (leading zeros dropped: uid=0, mode=01777).
    opts = {k: v for k, v in opts.items() if (k, v.lstrip("0")) not in SWARM_TMPFS}
    if "size" in opts:
        try:
            volume["tmpfs"] = {"size": size_bytes(opts.pop("size"))}
        except ValueError:
            raise ValueError(f"tmpfs {target}: unreadable size in {entry!r}") from None
    return volume, opts


def _port(port: dict[str, Any]) -> dict[str, Any]:
    # Host mode: the port is bound on the node that runs the task, like Compose, with the
    # client's address kept (nginx's per-client limits need it); the ingress mesh would NAT it.
    out: dict[str, Any] = {k: port[k] for k in ("target", "protocol") if k in port}
    published = str(port.get("published") or "")
    if published:
        out["published"] = int(published) if published.isdigit() else published
    return {**out, "mode": "host"}


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    # create_host_path passes the schema and is dropped: Swarm never creates a bind source.
    out = {k: v for k, v in volume.items() if k not in ("bind", "volume")}
    for kind in ("bind", "volume"):
        options = {k: v for k, v in (volume.get(kind) or {}).items() if k != "create_host_path"}
        if options:
            out[kind] = options
    return out


def _deploy(service: dict[str, Any]) -> dict[str, Any]:
    deploy = {k: v for k, v in (service.get("deploy") or {}).items() if v not in ({}, None)}
    limits = deploy.get("resources", {}).get("limits", {})
    if "cpus" in limits:
        limits["cpus"] = str(limits["cpus"])  # the stack schema wants a string
    policy = restart_policy(str(service.get("restart", "")))
    if policy is not None:
        deploy.setdefault("restart_policy", policy)
    # DNS round robin: a name answers with every task's address, as Compose's DNS does. Service
    # virtual IPs need IPVS, which not every host has, and host-mode ports need no routing mesh.
    deploy.setdefault("endpoint_mode", "dnsrr")
    return deploy


def service(name: str, svc: dict[str, Any], services: set[str]) -> dict[str, Any]:
    """One Compose service as a Swarm service (`services`: the names in the stack)."""
    svc = copy.deepcopy(svc)  # the Compose model stays as it was
    out = {k: v for k, v in svc.items() if k in PASS_THROUGH and v is not None}
    out["deploy"] = _deploy(svc)
    env = dict(svc.get("environment") or {})
    # upstream-sync resolves this name for the replicas' addresses: tasks.<service> answers
    # with them whatever the endpoint mode.
    if env.get("UPSTREAM_SERVICE") in services:
        out["environment"] = {**env, "UPSTREAM_SERVICE": f"tasks.{env['UPSTREAM_SERVICE']}"}
    if svc.get("ports"):
        out["ports"] = [_port(p) for p in svc["ports"]]
    volumes = [_volume(v) for v in svc.get("volumes") or []]
    volumes += [tmpfs_volume(entry)[0] for entry in svc.get("tmpfs") or []]
    if volumes:
        out["volumes"] = volumes
    return out


def _top_level(model: dict[str, Any], kind: str, used: set[str]) -> dict[str, Any]:
    # Compose's project-prefixed `name` goes: `docker stack deploy` prefixes the stack's name.
    return {
        name: {k: v for k, v in spec.items() if k != "name" or spec.get("external")}
        for name, spec in (model.get(kind) or {}).items()
        if name in used
    }


def stack_file(compose_model: dict[str, Any]) -> dict[str, Any]:
    """The stack file of a `compose config --format json` model, without profiled services."""
    kept = {n: s for n, s in compose_model["services"].items() if not s.get("profiles")}
    services = {name: service(name, svc, set(kept)) for name, svc in sorted(kept.items())}
    stack: dict[str, Any] = {"version": VERSION, "services": services}
    networks = {n for s in services.values() for n in s.get("networks") or {}}
    mounts = [v for s in services.values() for v in s.get("volumes", [])]
    volumes = {v["source"] for v in mounts if v["type"] == "volume"}
    secrets = {x["source"] for s in services.values() for x in s.get("secrets", [])}
    configs = {x["source"] for s in services.values() for x in s.get("configs", [])}
    for kind, used in (("volumes", volumes), ("secrets", secrets), ("configs", configs)):
        if entries := _top_level(compose_model, kind, used):
            stack[kind] = entries
    nets = _top_level(compose_model, "networks", networks)
    for spec in nets.values():
        if not spec.get("ipam"):
            spec.pop("ipam", None)
        if not spec.get("external"):
            spec["driver"] = "overlay"
        if not spec.get("external") and not spec.get("internal"):
            # `docker run --network` may join (a load generator, a probe); never the internal
            # network, which holds the unauthenticated replicas and metrics.
            spec["attachable"] = True
    if nets:
        stack["networks"] = nets
    return stack


def left_out(compose_model: dict[str, Any]) -> list[str]:
    """The services of Compose profiles (Swarm has none), as `name (profile, ...)`."""
    services = compose_model["services"].items()
    return [f"{n} ({', '.join(s['profiles'])})" for n, s in sorted(services) if s.get("profiles")]


def gaps(compose_model: dict[str, Any]) -> list[str]:
    """What the stack file cannot keep of the Compose model, one line a gap."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, svc in sorted(compose_model["services"].items()):
        if svc.get("profiles"):
            continue
        if svc.get("security_opt"):
            opts = ", ".join(svc["security_opt"])
            found[f"security_opt ({opts}): not applied by docker stack deploy"].append(name)
        for port in svc.get("ports") or []:
            if port.get("host_ip") and not ip_address(port["host_ip"]).is_unspecified:
                found[
                    f"port {port.get('published')}: published on {port['host_ip']} only by "
                    "Compose; a host-mode port binds every interface of the node"
                ].append(name)
        for entry in svc.get("tmpfs") or []:
            target, options = entry.partition(":")[0], tmpfs_volume(entry)[1]
            if options:
                opts = ",".join(f"{k}={v}" for k, v in options.items())
                found[
                    f"tmpfs {target}: {opts} dropped (a Swarm tmpfs takes a size only: "
                    "root-owned, with the mode of the image's directory: 1777 in these images)"
                ].append(name)
        for volume in svc.get("volumes") or []:
            if volume.get("type") == "bind":
                found[
                    f"bind mount {volume['source']}: must exist on every node that runs the task"
                ].append(name)
        for key in sorted(set(svc) - PASS_THROUGH - HANDLED):
            if svc[key] is not None:
                found[f"`{key}`: no Swarm equivalent, left out"].append(name)
    return [f"{', '.join(names)}: {gap}" for gap, names in found.items()]


def render(stack: dict[str, Any], omitted: list[str], remaining: list[str]) -> str:
    """The stack file's text: a header saying what it is and what it lacks, then the YAML."""
    header = [
        "GENERATED by `make swarm-config` (scripts/swarm_config.py) from compose.yaml with the",
        "settings of its environment: do not edit. Deploy: docker stack deploy -c FILE modelfleet",
        "Left out, Swarm has no profiles: " + (", ".join(omitted) or "nothing"),
        "Replaced, as docker stack deploy ignores them:",
        f"- restart -> deploy.restart_policy (fixed {RESTART_DELAY} delay, never giving up)",
        "- tmpfs -> volumes of type tmpfs (size only); ports -> long syntax, mode: host",
        "- build, container_name, depends_on -> nothing (Swarm builds nothing and starts in no",
        "  order; images must be on every node, upstream-sync waits for the replicas)",
        "- service VIPs -> endpoint_mode: dnsrr (tasks.model for upstream-sync); bridge networks",
        "  -> overlay",
        "Gaps that remain:",
        *(f"- {gap}" for gap in remaining),
    ]
    body: str = yaml.safe_dump(stack, sort_keys=False, default_flow_style=False, width=100)
    return "".join(f"# {line}\n" for line in header) + body


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` at once: a reader sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def write(model: dict[str, Any], out: Path) -> list[str]:
    """Write the stack file of a `compose config --format json` model; the gaps it has."""
    remaining = gaps(model)
    write_atomically(out, render(stack_file(model), left_out(model), remaining))
    return remaining


def main(argv: list[str] | None = None) -> int:
    """Write the stack file; print its path and the gaps that remain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    # Every profile, to name the services left out; the caller's settings (MODELFLEET_TAG,
    # REPLICAS, ...) apply as they do to `make up`.
    model = compose.config(("*",), project="modelfleet-swarm")
    remaining = write(model, args.out)
    print(f"swarm_config: wrote {args.out}")
    for gap in remaining:
        print(f"swarm_config: gap: {gap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
