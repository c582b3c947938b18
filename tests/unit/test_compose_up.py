"""scripts/compose_up.py: `make up` on a running stack rolls changed replicas (issue 12).

Specification: a replica runs a release, a hash of the model service's settings and image. When
running replicas are of another release than compose.yaml and the image say now, they are
replaced one at a time: a new replica is added, must be ready and in the load balancer's
upstream, the first one bakes behind the rollout gates (compared by release with the old
ones), and only then is one old replica drained; at least N replicas serve at every moment and
at most N + 1. A replica that is not ready in time or a failing gate rolls back: old replicas
back in the upstream, new ones drained and removed, exit status 1, the rest of the stack left as
it was. Otherwise the old replicas are removed and the stack converges. The load balancer,
which cannot roll, is announced before it restarts.

Docker and Compose are faked: containers with a release, readiness and a drain flag; the
load balancer's upstream is every ready replica that is not draining, at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts import compose_up, rollout_fleet, rollout_gates
from tests.unit.test_rollout import FakeClock
from tests.unit.test_rollout_gates import GOOD
from tests.unit.test_swarm_gates import SwarmPrometheus

PROJECT = "mf-unit"
IMAGE = "modelfleet/model-server:dev"
SERVICE_CONFIG = {"image": IMAGE, "environment": {"MODELFLEET_LOG_LEVEL": "INFO"}}


@dataclass
class Container:
    release: str
    image: str
    ready: bool = True
    drained: bool = False
    running: bool = True


class FakeStack:
    """Docker and Compose for one project; records what happened, and the fewest and most
    replicas the load balancer routed to at any moment."""

    def __init__(self, old: int, release: str = "", candidate_ready: bool = True) -> None:
        self.containers: dict[str, Container] = {
            f"old{i}": Container(release, "sha256:old") for i in range(old)
        }
        self.image_id = "sha256:new"
        self.settings = dict(SERVICE_CONFIG)
        self.candidate_ready = candidate_ready
        self.lb_hash = "lbhash"
        self.lb_stale = False
        self.events: list[str] = []
        self.routed_counts: list[int] = []

    def routed(self) -> list[str]:
        return [i for i, c in self.containers.items() if c.running and c.ready and not c.drained]

    def note(self) -> None:
        self.routed_counts.append(len(self.routed()))

    def docker(self, args: Sequence[str], timeout: float) -> str:
        assert timeout > 0
        if args[0] == "ps":
            if "label=com.docker.compose.service=lb" in args:
                return "lb\n"
            assert f"label=com.docker.compose.project={PROJECT}" in args
            every = "-aq" in args
            return "".join(f"{i}\n" for i, c in self.containers.items() if every or c.running)
        if args[0] == "image":
            return {IMAGE: self.image_id, "modelfleet/nginx:dev": "sha256:lb"}[args[-1]] + "\n"
        if args[0] == "tag":
            self.events.append(f"tag {args[1]} {args[2]}")
            return ""
        if args[0] == "inspect" and args[1] == "lb":
            image = "sha256:lb-old" if self.lb_stale else "sha256:lb"
            labels = {"com.docker.compose.config-hash": self.lb_hash}
            return json.dumps([{"Id": "lb", "Image": image, "Config": {"Labels": labels}}])
        if args[0] == "inspect" and args[1] == "-f":  # an address, for the upstream
            return f"10.0.0.{list(self.containers).index(args[-1]) + 2}\n"
        if args[0] == "inspect":
            return json.dumps([
                {"Id": i, "Image": self.containers[i].image,
                 "Config": {"Env": [f"MODELFLEET_RELEASE={self.containers[i].release}"]}}
                for i in args[1:]
            ])  # fmt: skip
        if args[0] in ("stop", "rm"):
            for i in args[1:]:
                self.containers[i].running = False
                if args[0] == "rm":
                    del self.containers[i]
                    self.events.append(f"rm {i}")
            self.note()
            return ""
        assert args[0] == "exec"
        if args[1] == "lb":
            return "".join(
                f"server 10.0.0.{list(self.containers).index(i) + 2}:8080;\n" for i in self.routed()
            )
        container = self.containers[args[1]]
        if tuple(args[2:]) in (rollout_fleet.DRAIN, rollout_fleet.UNDRAIN):
            container.drained = tuple(args[2:]) == rollout_fleet.DRAIN
            self.events.append(f"{'drain' if container.drained else 'undrain'} {args[1]}")
            self.note()
            return ""
        assert tuple(args[2:]) == compose_up.READY
        if not container.ready:  # the healthcheck's exit status 1
            raise rollout_fleet.DockerError("docker exec: exit status 1")
        return ""

    def compose(self, args: Sequence[str], env: Mapping[str, str], capture: bool) -> str:
        if args[:3] == ["config", "--format", "json"]:
            assert env == {"MODELFLEET_RELEASE": ""}
            services = {"model": self.settings, "lb": {"image": "modelfleet/nginx:dev"}}
            return json.dumps({"name": PROJECT, "services": services})
        if args[:2] == ["config", "--hash"]:
            return f"lb {self.lb_hash}\n"
        assert args[0] == "up", args
        self.events.append(" ".join(["up", *args[1:]]) + f" [{env['MODELFLEET_RELEASE']}]")
        if "--scale" in args and "--wait" not in args:
            wanted = int(args[args.index("--scale") + 1].split("=")[1])
            while len(self.containers) < wanted:
                new = f"new{len(self.containers)}"
                release = env["MODELFLEET_RELEASE"]
                self.containers[new] = Container(release, self.image_id, self.candidate_ready)
                self.events.append(f"created {new}")
            self.note()
        return ""


def converge(
    stack: FakeStack, prometheus: Any = None, bake: float = 30, scale: int | None = None,
    tmp_path: Path | None = None, said: list[str] | None = None,
) -> int:  # fmt: skip
    clock = FakeClock()
    fleet = rollout_fleet.Fleet(stack.docker, PROJECT, 60.0, clock, clock.sleep)
    query = prometheus if prometheus is not None else SwarmPrometheus(GOOD)
    gates = rollout_gates.Bake(bake, 120.0, query)
    repo = tmp_path or Path("/nonexistent")
    out = said if said is not None else []
    return compose_up.converge(stack.compose, fleet, gates, repo, scale, out.append)


def gates_of_release(excess: dict[str, float]) -> SwarmPrometheus:
    """The gates' fake Prometheus, its candidate series labelled with the new release."""
    prometheus = SwarmPrometheus(excess)
    prometheus.cell["release"] = release()
    return prometheus


def release(settings: Mapping[str, Any] = SERVICE_CONFIG, image: str = "sha256:new") -> str:
    return compose_up.release_of(settings, image)


def test_a_release_is_the_settings_and_the_image_not_the_replica_count() -> None:
    base = release()
    assert base == release(json.loads(json.dumps(SERVICE_CONFIG)))
    assert base != release(image="sha256:other")
    assert base != release({**SERVICE_CONFIG, "environment": {"MODELFLEET_LOG_LEVEL": "DEBUG"}})
    five, two = ({**SERVICE_CONFIG, "deploy": {"replicas": n, "pids": 256}} for n in (5, 2))
    assert release(five) == release(two)
    environment = {"MODELFLEET_LOG_LEVEL": "INFO", "MODELFLEET_RELEASE": "r-x"}
    assert base == release({**SERVICE_CONFIG, "environment": environment})
    assert base.startswith("r-") and len(base) == 14


def test_a_stack_without_replicas_is_started_with_the_release(tmp_path: Path) -> None:
    stack = FakeStack(old=0)
    assert converge(stack, tmp_path=tmp_path) == compose_up.OK
    assert stack.events == [f"up -d --wait --remove-orphans [{release()}]"]


def test_replicas_of_the_release_are_left_alone(tmp_path: Path) -> None:
    stack = FakeStack(old=3, release=release())
    assert converge(stack, tmp_path=tmp_path) == compose_up.OK
    assert stack.events == [f"up -d --wait --remove-orphans [{release()}]"]


def test_changed_replicas_are_replaced_one_at_a_time_never_fewer_than_n_serving(
    tmp_path: Path,
) -> None:
    stack = FakeStack(old=3)
    prometheus = gates_of_release(GOOD)
    said: list[str] = []
    assert converge(stack, prometheus, tmp_path=tmp_path, said=said) == compose_up.OK
    r = release()
    scale_up = "up -d --no-deps --no-recreate --scale model={} model [" + r + "]"
    assert stack.events == [
        "tag sha256:old modelfleet/model-server:dev-previous",
        scale_up.format(4), "created new3", "undrain new3", "drain old0",
        scale_up.format(5), "created new4", "undrain new4", "drain old1",
        scale_up.format(6), "created new5", "undrain new5", "drain old2",
        "rm old0", "rm old1", "rm old2",
        f"up -d --wait --remove-orphans [{r}]",
    ]  # fmt: skip
    assert min(stack.routed_counts) == 3 and max(stack.routed_counts) == 4
    # The canary was baked, judged by its release.
    assert any(f'release="{r}"' in q for q in prometheus.queries)
    assert any(line.startswith(f"model: gates passed after 30 s of bake on {r}") for line in said)
    assert "3 replicas replaced in" in said[-1]


def test_a_replica_that_never_becomes_ready_is_rolled_back_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    stack = FakeStack(old=3, candidate_ready=False)
    said: list[str] = []
    assert converge(stack, tmp_path=tmp_path, said=said) == compose_up.FAILED
    assert sorted(stack.containers) == ["old0", "old1", "old2"]
    assert stack.routed() == ["old0", "old1", "old2"]
    assert not any(e.startswith("up -d --wait") for e in stack.events)  # no converge
    assert said[-1].startswith("model: rolled back: new3 not ready after 60 s")
    assert min(stack.routed_counts) == 3


def test_a_failing_gate_on_the_canary_rolls_back_naming_the_gate(tmp_path: Path) -> None:
    stack = FakeStack(old=2)
    prometheus = gates_of_release({**GOOD, "latency": 0.245})
    said: list[str] = []
    assert converge(stack, prometheus, tmp_path=tmp_path, said=said) == compose_up.FAILED
    assert sorted(stack.containers) == ["old0", "old1"] and stack.routed() == ["old0", "old1"]
    assert "rm new2" in stack.events and "drain new2" in stack.events
    assert said[-1].startswith("model: rolled back: gate latency +0.245 > 0.1")
    assert any("no requests to" in line for line in said)


def test_a_failure_after_the_canary_puts_every_drained_old_replica_back(
    tmp_path: Path,
) -> None:
    stack = FakeStack(old=3)
    prometheus = gates_of_release(GOOD)
    original = stack.compose

    def second_never_ready(args: Sequence[str], env: Mapping[str, str], capture: bool) -> str:
        out = original(args, env, capture)
        if "new4" in stack.containers:
            stack.containers["new4"].ready = False
        return out

    stack.compose = second_never_ready  # type: ignore[method-assign]
    assert converge(stack, prometheus, tmp_path=tmp_path) == compose_up.FAILED
    assert sorted(stack.containers) == ["old0", "old1", "old2"]
    assert stack.routed() == ["old0", "old1", "old2"]
    assert min(stack.routed_counts) == 3


def test_without_a_bake_nothing_is_judged(tmp_path: Path) -> None:
    stack = FakeStack(old=1)
    prometheus = SwarmPrometheus(None)  # could never judge
    said: list[str] = []
    assert converge(stack, prometheus, bake=0, tmp_path=tmp_path, said=said) == compose_up.OK
    assert prometheus.queries == []
    assert said[-1].startswith("model: gates not run (ROLLOUT_BAKE=0); 1 replicas replaced")


def test_a_load_balancer_that_will_restart_is_announced_first(tmp_path: Path) -> None:
    stack = FakeStack(old=2, release=release())
    stack.lb_stale = True
    said: list[str] = []
    assert converge(stack, tmp_path=tmp_path, said=said) == compose_up.OK
    assert said == [
        "lb: its image or settings changed; the load balancer holds the one published port "
        "and cannot roll: restarting it once now (requests in those seconds are refused)"
    ]


def test_scale_changes_only_the_count_with_the_release(tmp_path: Path) -> None:
    stack = FakeStack(old=3)
    assert converge(stack, scale=5, tmp_path=tmp_path) == compose_up.OK
    assert stack.events == [f"up -d --wait --no-recreate --scale model=5 [{release()}]"]


def test_a_second_rollout_is_refused_naming_the_first(tmp_path: Path) -> None:
    stack = FakeStack(old=1)
    held = compose_up.rollout_lock(tmp_path, "rollout churn 2")
    with held, pytest.raises(compose_up.Refused, match="rollout churn 2"):
        converge(stack, tmp_path=tmp_path)
    assert list(stack.containers) == ["old0"]
