"""The stack's services on the swarm as the Docker CLI reports them, for `make swarm-up`,
`swarm-scale`, `swarm-down` (scripts/swarm.py) and the rollout gates' Swarm driver
(scripts/swarm_gates.py): the docker command, the services' state, and waiting for it."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from scripts.rollout_fleet import DockerError, run_docker

#: The stack's name (`docker stack deploy ... NAME`): its services are NAME_model, NAME_lb, ...
STACK = os.environ.get("SWARM_STACK", "modelfleet")
#: How long `up` and `scale` wait for the stack to serve, in seconds.
TIMEOUT = float(os.environ.get("SWARM_TIMEOUT", "300"))
#: The states in which Swarm has finished a service update, one way or the other.
UPDATE_DONE = {"completed", "rollback_completed", "paused", "rollback_paused"}
#: The label Docker puts on a stack's services, containers, networks and volumes.
LABEL = "com.docker.stack.namespace"


class SwarmError(RuntimeError):
    """The stack did not reach the state a step waits for."""


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


def wait_for_updates(
    before: dict[str, dict[str, str]], changed: list[str], timeout: float = TIMEOUT
) -> None:
    """Wait until Swarm has finished each update the deploy started (`changed`: the services
    whose image changed; a changed setting starts one too), at most ``timeout`` seconds;
    SwarmError naming the service when Swarm rolled an update back (a new task failed or never
    became healthy)."""
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
    wait_for("the rolling update", finished, timeout)
    now = service_status()
    for name in sorted(moved):
        if now[name]["state"] != "completed":
            seen = "; ".join(sorted(m for m in messages[name] if m))
            raise SwarmError(
                f"{name}: Swarm did not complete the update ({now[name]['state']}: {seen}); "
                f"it serves {now[name]['image']}"
            )
        say(f"{name}: updated to {now[name]['image']}, one task at a time")


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
