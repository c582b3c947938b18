"""A second swarm node on the same machine (#14 part 4): `make swarm-up SWARM_NODES=2`.

The second node is a Docker Engine in a container (services/swarm-node: Debian's docker.io),
joined to the host's swarm as a worker. What it needs, and why:

* Capabilities: every one but CAP_SYS_RESOURCE, seccomp and AppArmor unconfined, /proc and
  /sys unmasked, every device allowed. That is ``--privileged`` less one capability: the
  Docker Engine of these hosts lacks CAP_SYS_RESOURCE itself, so ``--privileged`` fails.
* Its /var/lib/docker on a volume: overlay2 cannot stack on the container's own overlay root.
* An address the manager advertises that the node can reach: the gateway of the node's
  network (the host as seen from a container), never 127.0.0.1. A swarm this host already manages
  while advertising a loopback address is refused.
* The images: there is no registry, so each image the stack uses is copied into the node
  (``docker save | docker load``), under the same unique tag.
* The host paths the replicas bind-mount (the model repository), mounted at the same path.

The load balancer and Prometheus publish their ports on the manager (compose.yaml's placement
constraints), so 127.0.0.1:LB_PORT keeps working; the replicas are spread over both nodes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from scripts.rollout_fleet import DockerError
from scripts.swarm_services import SwarmError, docker, node_state, say, wait_for

#: The node's container name and host name (its node name in the swarm).
NODE = "modelfleet-node2"
#: Its /var/lib/docker.
VOLUME = f"{NODE}-docker"
#: How long the node's engine may take to answer.
START_TIMEOUT = 60.0
#: A copy of a few hundred MiB into the node's engine.
LOAD_TIMEOUT = 600.0


def _network(field: str) -> str:
    """A field of the node's container network settings (``Gateway``, ``IPAddress``)."""
    template = "{{range .NetworkSettings.Networks}}{{.FIELD}} {{end}}".replace("FIELD", field)
    out = docker("inspect", NODE, "--format", template)
    if not out:
        raise SwarmError(f"{NODE} has no network {field}")
    return out.split()[0]


def host_address() -> str:
    """The host as the node's container reaches it: its network's gateway."""
    return _network("Gateway")


def in_node(*args: str, timeout: float = 120) -> str:
    """Run the docker CLI inside the node, against its own engine."""
    return docker("exec", NODE, "docker", *args, timeout=timeout)


def running() -> bool:
    """Whether the node's container exists and runs."""
    out = docker("ps", "-q", "--filter", f"name=^{NODE}$", "--filter", "status=running")
    return bool(out)


def start(image: str, binds: Iterable[str]) -> None:
    """Start the node's container (``binds``: host paths mounted read-only at the same path)
    and wait until its engine answers."""
    if running():
        say(f"node {NODE}: already running")
        return
    docker("rm", "-f", NODE)  # a stopped one from an earlier run
    mounts = [arg for path in sorted(set(binds)) for arg in ("-v", f"{path}:{path}:ro")]
    docker(
        "run", "-d", "--name", NODE, "--hostname", NODE, "--restart", "no",
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
        "-v", f"{VOLUME}:/var/lib/docker", *mounts, image,
    )  # fmt: skip

    def engine() -> str | None:
        try:
            in_node("info", "--format", "{{.ServerVersion}}", timeout=10)
        except DockerError as e:  # while dockerd starts
            return str(e).splitlines()[0][:120]
        return None

    wait_for(f"the Docker Engine of {NODE}", engine, START_TIMEOUT)
    engine_info = in_node("info", "--format", "{{.ServerVersion}} ({{.Driver}})")
    say(f"node {NODE}: Docker Engine {engine_info} started")


def join() -> None:
    """Join the node to the host's swarm as a worker (nothing when it is in it already)."""
    manager = node_state()
    address = manager.get("NodeAddr", "")
    if address.startswith("127.") or address == "::1":
        raise SwarmError(
            f"this host's swarm advertises {address}, which a second node cannot reach: "
            "make swarm-down first (or SWARM_ADVERTISE_ADDR=<an address of this host>)"
        )
    if in_node("info", "--format", "{{.Swarm.LocalNodeState}}") == "active":
        return
    token = docker("swarm", "join-token", "-q", "worker")
    node_ip = _network("IPAddress")
    in_node("swarm", "join", "--token", token, "--advertise-addr", node_ip, f"{address}:2377")
    say(f"node {NODE} ({node_ip}) joined the swarm as a worker of {address}")


def load(images: Iterable[str]) -> None:
    """Copy ``images`` into the node's engine (``docker save | docker load``), each once."""
    have = set(in_node("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").split())
    missing = sorted(set(images) - have)
    if not missing:
        return
    # A pipe between two docker processes: run_docker takes no stdin.
    save = subprocess.Popen(["docker", "save", *missing], stdout=subprocess.PIPE)
    try:
        loaded = subprocess.run(
            ["docker", "exec", "-i", NODE, "docker", "load", "-q"], stdin=save.stdout,
            capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        assert save.stdout is not None
        save.stdout.close()
        save.wait(timeout=LOAD_TIMEOUT)
    if loaded.returncode != 0 or save.returncode != 0:
        raise SwarmError(f"copying images into {NODE} failed: {loaded.stderr.strip()[:300]}")
    say(f"node {NODE}: loaded {', '.join(missing)}")


def remove() -> None:
    """Take the node out of the swarm and remove its container and volume, if there is one."""
    exists = bool(docker("ps", "-aq", "--filter", f"name=^{NODE}$"))
    state = node_state()
    if state.get("ControlAvailable"):
        ids = docker("node", "ls", "-q", "--filter", f"name={NODE}").split()
        if ids:
            docker("node", "rm", "--force", *ids)
    if exists:
        docker("rm", "-f", "-v", NODE)
    if docker("volume", "ls", "-q", "--filter", f"name=^{VOLUME}$"):
        docker("volume", "rm", VOLUME)
    if exists:
        say(f"node {NODE}: left the swarm and removed, with its engine's volume")
