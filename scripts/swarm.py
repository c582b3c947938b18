"""`make swarm-up`, `make swarm-scale REPLICAS=N`, `make swarm-down`: the stack on Docker Swarm.

`up` deploys the stack file of `make swarm-config` on the swarm this host belongs to, creating a
one-node swarm when it belongs to none (and saying so). Each image `make build` tagged is
tagged again under a name unique to its content (`swarm-<12 hex of its id>`), so a rebuild
rolls exactly the services whose image changed and the same build redeploys as nothing
changed. It waits for Swarm's rolling updates, judging a new model-server image with the
rollout gates (scripts/swarm_gates.py: rolled back on a failing gate), and until the seed
answer comes back through the load balancer. `scale` sets the replicas and waits until the load
balancer's upstream and Prometheus's targets list each of them. `down` removes the stack and
its volumes, and leaves the swarm only when `up` created it and nothing else runs on it: nothing
ever leaves or changes a swarm the host already belonged to.

    python -m scripts.swarm up | scale N | down
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bench import ROOT, BenchError, compose
from bench.prom import Prometheus
from scripts import rollout_gates, swarm_config, swarm_gates, swarm_nodes
from scripts.rollout_fleet import DockerError
from scripts.swarm_gates import RolledBackByGates, judge_update, release
from scripts.swarm_services import (
    LABEL,
    STACK,
    TIMEOUT,
    SwarmError,
    all_running,
    docker,
    node_state,
    say,
    service_replicas,
    service_status,
    task_failures,
    wait_for,
    wait_for_updates,
)

#: The address a swarm created here advertises (empty: loopback, which keeps a one-node swarm
#: off the network; with two nodes the host's address on the default bridge).
ADVERTISE_ADDR = os.environ.get("SWARM_ADVERTISE_ADDR", "")
#: Nodes of the swarm: 1, or 2 with a second Docker Engine in a container (swarm_nodes.py).
NODES = os.environ.get("SWARM_NODES") or "1"
#: The image of the second node's engine (make swarm-node-image).
NODE_IMAGE = f"modelfleet/swarm-node:{os.environ.get('MODELFLEET_TAG') or 'dev'}"
#: Written when `up` created the swarm, with the node's id: only then may `down` leave it.
CREATED_MARKER = ROOT / "build" / "swarm" / "created-by-modelfleet"
TAG_PREFIX = "swarm-"
SEED_PATH = "/predict_data?pregnant=1&glucose=3&pressure=1"
SEED_ANSWER = {"Answer": ["no"]}
GWBRIDGE = "docker_gwbridge"


def ensure_swarm(advertise: str) -> None:
    """Join nothing, change nothing: use the swarm this host manages, or create a one-node one
    advertising ``advertise``."""
    state = node_state()
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise SwarmError("this host is a worker of a swarm: run make swarm-up on a manager")
        say(f"using the swarm this host belongs to (node {state.get('NodeID')})")
        return
    if state.get("LocalNodeState") != "inactive":
        raise SwarmError(f"this host's swarm state is {state.get('LocalNodeState')!r}")
    # swarm init also creates the docker_gwbridge network; leaving the swarm does not remove it.
    had_gwbridge = bool(docker("network", "ls", "-q", "--filter", f"name=^{GWBRIDGE}$"))
    docker("swarm", "init", "--advertise-addr", advertise)
    node = node_state()["NodeID"]
    CREATED_MARKER.parent.mkdir(parents=True, exist_ok=True)
    CREATED_MARKER.write_text(node + ("" if had_gwbridge else f"\n{GWBRIDGE}") + "\n")
    say(f"this host was in no swarm: created a one-node swarm ({advertise}, node {node});")
    say("make swarm-down leaves it again")


def unique_refs(images: list[str]) -> dict[str, str]:
    """Each image's reference under a tag naming its content (`swarm-<12 hex of its id>`): a
    rebuilt image gets a new tag and an unchanged one keeps its own, so Swarm replaces the
    tasks of exactly the services whose image changed."""
    ids = docker("image", "inspect", "--format", "{{.Id}}", *images).split()
    return {
        image: f"{image.rsplit(':', 1)[0]}:{TAG_PREFIX}{image_id.split(':')[-1][:12]}"
        for image, image_id in zip(images, ids, strict=True)
    }


def stack_images(model: dict[str, Any]) -> list[str]:
    """The images of the services the stack file keeps (none of Compose's profiles)."""
    return sorted({s["image"] for s in swarm_config.stack_file(model)["services"].values()})


def published_port(model: dict[str, Any], service: str) -> int:
    """The host port a service publishes (LB_PORT, PROMETHEUS_PORT)."""
    return int(model["services"][service]["ports"][0]["published"])


def seed_answer(lb_url: str) -> str | None:
    """None when the book's plumber request gets the book's answer through the load balancer."""
    try:
        r = requests.get(lb_url + SEED_PATH, timeout=5)
    except requests.RequestException as e:
        return f"{type(e).__name__}"
    return (
        None
        if r.status_code == 200 and r.json() == SEED_ANSWER
        else f"{r.status_code} {r.text[:80]}"
    )


def prometheus_value(prom_url: str, expr: str) -> float | None:
    """The one value of an instant query, or None when it has none (or Prometheus is away)."""
    try:
        return Prometheus(prom_url, timeout=5).scalar(expr)
    except (requests.RequestException, ValueError, BenchError):
        return None


def up(model: dict[str, Any], out: Path) -> None:
    """Deploy the stack, or roll the services whose image or settings changed; wait until it
    serves the seed answer. SwarmError when Swarm rolled an update back."""
    refs = unique_refs(stack_images(model))
    for image, ref in refs.items():
        docker("tag", image, ref)
    try:
        bake, limit = rollout_gates.bake_settings()
    except ValueError as e:
        raise SwarmError(str(e)) from None
    model = copy.deepcopy(model)
    for svc in model["services"].values():
        svc["image"] = refs.get(svc["image"], svc["image"])
    replicas = model["services"]["model"]
    # The replicas report their image's tag, by which the gates tell new ones from old ones.
    replicas.setdefault("environment", {})["MODELFLEET_RELEASE"] = release(replicas["image"])
    delay = swarm_gates.update_delay(bake)
    replicas["deploy"]["update_config"]["delay"] = f"{delay:.0f}s"
    # Swarm waits `delay` after each replica it replaces.
    update_timeout = TIMEOUT + int(replicas["deploy"]["replicas"]) * delay
    swarm_config.write(model, out)
    say(f"images {', '.join(sorted(refs.values()))}; stack file {out}")
    if NODES == "2":
        add_node(model)
    else:
        ensure_swarm(ADVERTISE_ADDR or "127.0.0.1")
    before = service_status()
    services = model["services"]
    changed = sorted(
        n for n in before if n in services and before[n]["image"] != services[n]["image"]
    )
    if "lb" in changed:
        say("the load balancer's image changed: its one task stops before the new one starts")
        say("(its port is published on the node), so requests fail for those seconds")
    docker("stack", "deploy", "--resolve-image", "never", "--prune", "--detach=true",
           "-c", str(out), STACK, timeout=300)  # fmt: skip
    lb_url = f"http://127.0.0.1:{published_port(model, 'lb')}"
    try:
        if "model" in changed:
            prom_url = f"http://127.0.0.1:{published_port(model, 'prometheus')}"
            gates = rollout_gates.Bake(bake, limit, rollout_gates.prometheus_query(prom_url))
            new = release(replicas["image"])
            judge_update(before["model"], new, replicas, gates, update_timeout)
        wait_for_updates(before, changed, update_timeout)
        # Twice: a task that starts and then fails is running for a moment.
        for _ in range(2):
            wait_for("every service running", all_running)
            wait_for(f"the seed answer at {lb_url}", lambda: seed_answer(lb_url))
            time.sleep(3)
    except RolledBackByGates:
        raise  # no task failed: the gates did
    except (SwarmError, DockerError) as e:
        raise SwarmError(f"{e}; failed tasks: {task_failures()}") from None
    say(f"stack {STACK!r} serves at {lb_url}: {', '.join(sorted(service_replicas()))}")


def add_node(model: dict[str, Any]) -> None:
    """Start the second node, join it to the swarm, and copy into it the images of the
    services it may run (those not placed on the manager), with the host paths they mount."""
    workers = [
        svc for svc in swarm_config.stack_file(model)["services"].values()
        if "node.role == manager" not in svc.get("deploy", {}).get("placement", {}).get(
            "constraints", [])
    ]  # fmt: skip
    binds = [v["source"] for svc in workers for v in svc.get("volumes", []) if v["type"] == "bind"]
    swarm_nodes.start(NODE_IMAGE, binds)
    ensure_swarm(ADVERTISE_ADDR or swarm_nodes.host_address())
    swarm_nodes.join()
    swarm_nodes.load(svc["image"] for svc in workers)


def scale(model: dict[str, Any], replicas: int) -> None:
    """Set the replicas and wait until the upstream and Prometheus's targets list each."""
    docker("service", "scale", "--detach", f"{STACK}_model={replicas}")
    prom_url = f"http://127.0.0.1:{published_port(model, 'prometheus')}"
    wait_for(f"{replicas} replicas running", all_running)

    def discovered() -> str | None:
        upstream = prometheus_value(prom_url, "max(modelfleet_upstream_replicas)")
        targets = prometheus_value(prom_url, 'count(up{job="model"} == 1)')
        if targets is None and upstream is not None:
            targets = 0.0  # count() of no series has no value
        if upstream == targets == replicas:
            return None
        return f"upstream {upstream}, Prometheus targets up {targets}"

    wait_for(f"{replicas} replicas in the upstream and scraped", discovered)
    say(f"{STACK}_model: {replicas} replicas, each in the load balancer and scraped")


def untag_unused() -> list[str]:
    """Remove the `swarm-*` tags no service of the swarm uses (a task restarted later needs
    its tag: images are never pulled); the images stay under their build tag."""
    tags = docker("image", "ls", "--filter", f"reference=*/*:{TAG_PREFIX}*", "--format",
                  "{{.Repository}}:{{.Tag}}").split()  # fmt: skip
    used: set[str] = set()
    if node_state().get("ControlAvailable"):
        ids = docker("service", "ls", "-q").split()
        if ids:
            specs = docker("service", "inspect", "--format",
                           "{{.Spec.TaskTemplate.ContainerSpec.Image}}", *ids)  # fmt: skip
            used = {image.split("@")[0] for image in specs.split()}
    unused = sorted(set(tags) - used)
    if unused:
        docker("image", "rm", *unused)
    return unused


def down() -> None:
    """Remove the second node if there is one, the stack and its volumes; leave the swarm only
    when `up` created it."""
    swarm_nodes.remove()
    if node_state().get("ControlAvailable") and service_replicas():
        docker("stack", "rm", STACK)

    def removed() -> str | None:
        left = docker("ps", "-aq", "--filter", f"label={LABEL}={STACK}")
        nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}={STACK}")
        return (
            f"containers {len(left.split())}, networks {len(nets.split())}"
            if left or nets
            else None
        )

    wait_for(f"stack {STACK!r} removed", removed, timeout=120)
    volumes = docker("volume", "ls", "-q", "--filter", f"label={LABEL}={STACK}").split()
    if volumes:
        docker("volume", "rm", *volumes)
    untagged = untag_unused()
    say(f"stack {STACK!r} removed, with {len(volumes)} volume(s) and {len(untagged)} image tag(s)")
    if not CREATED_MARKER.exists():
        say("the swarm this host belongs to (if any) is left as it was")
        return
    state = node_state()
    others = docker("service", "ls", "-q") if state.get("LocalNodeState") == "active" else ""
    node, *created = CREATED_MARKER.read_text().split()
    if state.get("NodeID") != node:
        say("the swarm make swarm-up created is gone or replaced: nothing to leave")
    elif others:
        say(f"the swarm make swarm-up created runs {len(others.split())} other service(s): kept")
        return
    else:
        docker("swarm", "leave", "--force")
        if GWBRIDGE in created:
            docker("network", "rm", GWBRIDGE)
        say("left the one-node swarm make swarm-up created")
    CREATED_MARKER.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run one action; non-zero with the reason when it fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("up")
    scaling = actions.add_parser("scale")
    scaling.add_argument("replicas", type=int)
    actions.add_parser("down")
    parser.add_argument("--out", type=Path, default=swarm_config.DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        if args.action == "down":
            down()
            return 0
        model = compose.config(("*",), project="modelfleet-swarm")
        if NODES not in ("1", "2"):
            parser.error(f"SWARM_NODES must be 1 or 2, not {NODES!r}")
        if args.action == "up":
            up(model, args.out)
        elif args.replicas < 0:
            parser.error("REPLICAS must be 0 or more")
        else:
            scale(model, args.replicas)
    except (SwarmError, DockerError) as e:
        print(f"swarm: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
