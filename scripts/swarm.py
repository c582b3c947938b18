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
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench import ROOT, BenchError, compose
from bench.prom import Prometheus
from scripts import rollout_gates, swarm_config, swarm_gates
from scripts.rollout_fleet import DockerError, run_docker
from scripts.rollout_gates import GateFailed

#: The stack's name (`docker stack deploy ... NAME`): its services are NAME_model, NAME_lb, ...
STACK = os.environ.get("SWARM_STACK", "modelfleet")
#: How long `up` and `scale` wait for the stack to serve, in seconds.
TIMEOUT = float(os.environ.get("SWARM_TIMEOUT", "300"))
#: The address a swarm created here advertises: loopback keeps a one-node swarm off the network.
ADVERTISE_ADDR = os.environ.get("SWARM_ADVERTISE_ADDR", "127.0.0.1")
#: Written when `up` created the swarm, with the node's id: only then may `down` leave it.
CREATED_MARKER = ROOT / "build" / "swarm" / "created-by-modelfleet"
TAG_PREFIX = "swarm-"
#: The states in which Swarm has finished a service update, one way or the other.
UPDATE_DONE = {"completed", "rollback_completed", "paused", "rollback_paused"}
SEED_PATH = "/predict_data?pregnant=1&glucose=3&pressure=1"
SEED_ANSWER = {"Answer": ["no"]}
LABEL = "com.docker.stack.namespace"
GWBRIDGE = "docker_gwbridge"


class SwarmError(RuntimeError):
    """The stack did not reach the state a step waits for."""


class RolledBackByGates(SwarmError):
    """The rollout gates failed a new image and Swarm rolled it back."""


def docker(*args: str, timeout: float = 120) -> str:
    """Run the docker CLI; its stdout, stripped (DockerError when it fails or times out)."""
    return run_docker(args, timeout).strip()


def say(message: str) -> None:
    """One line of progress."""
    print(f"swarm: {message}", flush=True)


def wait_for(what: str, check: Callable[[], str | None], timeout: float = TIMEOUT) -> None:
    """Poll `check` (None: done; else what is still missing) until done or `timeout`."""
    deadline = time.monotonic() + timeout
    missing: str | None = "not checked yet"
    while time.monotonic() < deadline:
        missing = check()
        if missing is None:
            return
        time.sleep(2)
    raise SwarmError(f"{what}: not after {timeout:.0f} s ({missing})")


def node_state() -> dict[str, Any]:
    """This engine's swarm membership (docker info's .Swarm)."""
    info: dict[str, Any] = json.loads(docker("info", "--format", "{{json .Swarm}}"))
    return info


def ensure_swarm() -> None:
    """Join nothing, change nothing: use the swarm this host manages, or create a one-node one."""
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
    docker("swarm", "init", "--advertise-addr", ADVERTISE_ADDR)
    node = node_state()["NodeID"]
    CREATED_MARKER.parent.mkdir(parents=True, exist_ok=True)
    CREATED_MARKER.write_text(node + ("" if had_gwbridge else f"\n{GWBRIDGE}") + "\n")
    say(f"this host was in no swarm: created a one-node swarm ({ADVERTISE_ADDR}, node {node});")
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


def service_status() -> dict[str, dict[str, str]]:
    """The stack's services (names without the stack's prefix): their image and the state,
    start and message of their last update."""
    ids = docker("service", "ls", "-q", "--filter", f"label={LABEL}={STACK}").split()
    if not ids:
        return {}
    fields = "{{.Spec.Name}}|{{.Spec.TaskTemplate.ContainerSpec.Image}}|" + (
        "{{with .UpdateStatus}}{{.State}}|{{.StartedAt}}|{{.Message}}{{else}}||{{end}}"
    )
    out = {}
    for line in docker("service", "inspect", "--format", fields, *ids).splitlines():
        name, image, state, started, message = line.split("|", 4)
        out[name.removeprefix(f"{STACK}_")] = {
            "image": image.split("@")[0], "state": state, "started": started, "message": message,
        }  # fmt: skip
    return out


def wait_for_updates(before: dict[str, dict[str, str]], changed: list[str]) -> None:
    """Wait until Swarm has finished each update the deploy started (`changed`: the services
    whose image changed; a changed setting starts one too); SwarmError naming the service when
    Swarm rolled an update back (a new task failed or never became healthy)."""
    messages: dict[str, set[str]] = defaultdict(set)
    moved: set[str] = set()

    def finished() -> str | None:
        now = service_status()
        # A service the deploy created has no update to wait for.
        moved.update(n for n in now if n in before and now[n]["started"] != before[n]["started"])
        for name in moved:
            messages[name].add(now[name]["message"])
        busy = [f"{n}: not started" for n in changed if n not in moved]
        busy += [f"{n}: {now[n]['state']}" for n in moved if now[n]["state"] not in UPDATE_DONE]
        return ", ".join(sorted(busy)) or None

    time.sleep(2)  # the orchestrator starts an update just after the deploy returns
    wait_for("the rolling update", finished)
    now = service_status()
    for name in sorted(moved):
        if now[name]["state"] != "completed":
            seen = "; ".join(sorted(m for m in messages[name] if m))
            raise SwarmError(
                f"{name}: Swarm did not complete the update ({now[name]['state']}: {seen}); "
                f"it serves {now[name]['image']}"
            )
        say(f"{name}: updated to {now[name]['image']}, one task at a time")


def release(image: str) -> str:
    """What a replica of ``image`` reports as its release: the image's unique tag."""
    return image.rsplit(":", 1)[-1]


def judge_update(
    before: dict[str, str], new: str, replicas: dict[str, Any], gates: rollout_gates.Bake
) -> None:
    """Judge Swarm's update of the replicas to release ``new`` with the rollout gates
    (scripts/swarm_gates.py); on a failing gate roll it back and raise SwarmError."""

    def state() -> str:
        now = service_status()["model"]
        return "updating" if now["started"] == before["started"] else now["state"]

    update = swarm_gates.Update(new, int(replicas["deploy"]["replicas"]), state)
    try:
        say(f"model: {swarm_gates.judge(update, gates, time.monotonic, time.sleep)}")
    except swarm_gates.SwarmFinished:
        return  # Swarm rolled back by itself: wait_for_updates says why
    except GateFailed as e:
        say(f"model: {e}: rolling back")
        docker("service", "rollback", "--detach", f"{STACK}_model")
        wait_for("the gates' rollback", lambda: None if state() in UPDATE_DONE else state())
        now = service_status()["model"]
        raise RolledBackByGates(
            f"model: rolled back by the gates ({now['state']}): {e}; it serves {now['image']}"
        ) from None


def stack_images(model: dict[str, Any]) -> list[str]:
    """The images of the services the stack file keeps (none of Compose's profiles)."""
    return sorted({s["image"] for s in swarm_config.stack_file(model)["services"].values()})


def published_port(model: dict[str, Any], service: str) -> int:
    """The host port a service publishes (LB_PORT, PROMETHEUS_PORT)."""
    return int(model["services"][service]["ports"][0]["published"])


def service_replicas() -> dict[str, str]:
    """`docker service ls` of the stack: service -> running/desired."""
    out = docker("service", "ls", "--filter", f"label={LABEL}={STACK}", "--format",
                 "{{.Name}} {{.Replicas}}")  # fmt: skip
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def all_running() -> str | None:
    """None when every service runs all its replicas (a task with a healthcheck counts once
    healthy), else which do not."""
    services = service_replicas()
    pending = {n: r for n, r in services.items() if len(set(r.split("/"))) != 1}
    if not services:
        return "no services"
    return f"{pending}" if pending else None


def task_failures(limit: int = 5) -> str:
    """The last errors of the stack's failed tasks, for a message."""
    try:
        out = docker("stack", "ps", STACK, "--filter", "desired-state=shutdown", "--no-trunc",
                     "--format", "{{.Name}}: {{.Error}}")  # fmt: skip
    except DockerError as e:  # no task at all ("nothing found in stack")
        return str(e)
    errors = [line for line in out.splitlines() if not line.endswith(": ")]
    return "; ".join(errors[:limit]) or "no task failed"


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
    replicas["deploy"]["update_config"]["delay"] = swarm_gates.update_delay(bake)
    swarm_config.write(model, out)
    say(f"images {', '.join(sorted(refs.values()))}; stack file {out}")
    ensure_swarm()
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
            judge_update(before["model"], release(replicas["image"]), replicas, gates)
        wait_for_updates(before, changed)
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
    """Remove the stack and its volumes; leave the swarm only when `up` created it."""
    if service_replicas():
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
