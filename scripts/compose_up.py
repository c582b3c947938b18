"""`make up` and `make scale`: converge the stack to compose.yaml, replacing changed model
replicas one at a time behind the rollout gates instead of recreating them all at once.

    python -m scripts.compose_up [--scale N]     (services/model-server on PYTHONPATH)

What a replica runs is its *release*: a hash of the model service's resolved settings
(``compose config``, the replica count left out) and of its image's id, set as
``MODELFLEET_RELEASE``, which each replica reports as the ``release`` label of
``modelfleet_replica_info``. `docker compose up` would recreate every replica of a changed
release at once: the measured outage of issue #12 (1,320 of 70,677 requests failed in 2.7 s).
Here, when running replicas are of another release:

1. One new replica of the new release is added (``up --no-deps --no-recreate --scale
   model=N+1``: Compose leaves the others as they are and creates only the missing one). It must
   answer ``/readyz`` (every model loaded and verified) within ``ROLLOUT_TIMEOUT`` seconds (60)
   and be in the load balancer's upstream before anything else happens.
2. The first one, the canary, bakes for ``ROLLOUT_BAKE`` seconds behind the gates of
   rules/rollout.yml (scripts/rollout_gates.py), compared with the old release's replicas on
   the same traffic, exactly as a Swarm image update is judged; every later step reads the
   gates once more.
3. Then one old replica is drained (out of the upstream, its requests finished) and the next
   new one is added, so that at least N replicas serve at every moment and at most one more.
   The drained old replicas keep running, idle, until the last new one serves, so that a
   rollback is only their return to the upstream: no image to pull or rebuild, no settings to
   recover (Argo Rollouts keeps its old ReplicaSet for the same reason).
4. A replica that is not ready in time, a failing gate, gates that cannot judge within
   ``ROLLOUT_BAKE_LIMIT`` or a failing docker command roll back: the old replicas are put back
   in the upstream, the new ones drained and removed; one verdict line, exit status 1, and the
   rest of the stack is left as it was. On success the old replicas are removed and the rest of
   the stack converges (``up -d --wait --remove-orphans``), which leaves the replicas alone:
   Compose recreates a service only when its settings or image changed, never because a
   dependency did. The load balancer holds the one published port and cannot roll: when its
   own image or settings changed, this says so before Compose restarts it.

The previous release's image gets the tag ``<image>-previous`` (e.g.
``modelfleet/model-server:dev-previous``), so that it stays on the machine after a rebuild
moved the tag. One rollout at a time: the model rollouts' lock (scripts/rollout.py) is held.
With ``ROLLOUT_BAKE=0`` nothing is judged (readiness only): an idle stack has no traffic for
the gates to judge, and they would fail closed after ``ROLLOUT_BAKE_LIMIT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts import rollout_gates
from scripts.rollout import Refused, fleet_and_gates, rollout_lock
from scripts.rollout_fleet import (
    BALANCER,
    DOCKER_TIMEOUT,
    POLL_INTERVAL,
    SERVICE,
    Docker,
    DockerError,
    Fleet,
    NotServing,
    run_docker,
)
from scripts.rollout_gates import GateFailed

ROOT = Path(__file__).resolve().parents[1]
OK, FAILED, REFUSED = 0, 1, 2
#: A replica's readiness, asked from inside: its own healthcheck, which exits 0 when /readyz
#: on the probe port (answered even when every worker is busy) says every model is verified.
READY = ("/app/healthcheck.sh",)

#: ``compose(args, env)``: scripts/compose's standard output (``capture``) or None; ComposeError
#: when it fails. ``env`` is added to this process's environment.
Compose = Callable[[Sequence[str], Mapping[str, str], bool], str]


class ComposeError(RuntimeError):
    """A compose command failed; the message is one line."""


def run_compose(args: Sequence[str], env: Mapping[str, str], capture: bool) -> str:
    """Run scripts/compose (the project's one way to run Compose) from the project root."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "compose"), *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=capture, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines() or [f"exit status {proc.returncode}"]
        raise ComposeError(f"compose {args[0]}: {lines[-1]}")
    return proc.stdout or ""


def release_of(service: Mapping[str, Any], image_id: str) -> str:
    """The release of a model service's resolved settings and image: equal settings and image,
    equal release. The replica count is not part of it (scaling is not a new release), nor
    ``MODELFLEET_RELEASE`` itself."""
    settings = json.loads(json.dumps(service))
    settings.pop("scale", None)
    (settings.get("deploy") or {}).pop("replicas", None)
    (settings.get("environment") or {}).pop("MODELFLEET_RELEASE", None)
    blob = json.dumps(settings, sort_keys=True) + "\n" + image_id
    return "r-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Replica:
    """A running model container: its id and the release it runs ("" without one)."""

    id: str
    release: str
    image: str = ""


def inspect_replicas(docker: Docker, ids: Sequence[str]) -> list[Replica]:
    """The replicas ``ids`` with their release and image id (one ``docker inspect``)."""
    if not ids:
        return []
    found = json.loads(docker(["inspect", *ids], DOCKER_TIMEOUT))
    replicas = []
    for c in found:
        env = dict(e.split("=", 1) for e in (c["Config"].get("Env") or []) if "=" in e)
        replicas.append(Replica(c["Id"][:12], env.get("MODELFLEET_RELEASE", ""), c["Image"]))
    return replicas


@dataclass
class Roll:
    """One rolling replacement of ``old`` by replicas of ``release``."""

    fleet: Fleet
    compose: Compose
    env: Mapping[str, str]
    release: str
    old: list[Replica]
    gates: rollout_gates.Bake
    say: Callable[[str], None] = print
    new: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)

    def run(self) -> str:
        """Replace every old replica; what was judged, one line. GateFailed, NotServing,
        DockerError or ComposeError after rolling back (the fleet serves the old release)."""
        clock = self.fleet.clock
        started = clock()
        judged = "gates not run (ROLLOUT_BAKE=0)"
        try:
            for step, old in enumerate(self.old, 1):
                replica, ready = self._add()
                self.say(f"model: {step}/{len(self.old)} {replica} of {self.release} serves "
                         f"after {ready:.1f} s")  # fmt: skip
                if self.gates.seconds > 0:
                    judged = self._judge(first=step == 1) or judged
                    if step == 1:
                        self.say(f"model: {judged}")
                self.fleet.drain([old.id])
                self.drained.append(old.id)
        except (GateFailed, NotServing, DockerError, ComposeError) as failure:
            self.say(f"model: {type(failure).__name__} at step {len(self.new)}: rolling back")
            self._roll_back(clock())
            raise
        self._remove([o.id for o in self.old])
        return f"{judged}; {len(self.old)} replicas replaced in {clock() - started:.1f} s"

    def _add(self) -> tuple[str, float]:
        """Add one replica of the release; it and the seconds until it served."""
        start = self.fleet.clock()
        before = set(self.fleet.every_replica())
        scale = f"{SERVICE}={len(before) + 1}"
        self.compose(["up", "-d", "--no-deps", "--no-recreate", "--scale", scale, SERVICE],
                     self.env, True)  # fmt: skip
        created = [r for r in self.fleet.every_replica() if r not in before]
        self.new.extend(created)
        if len(created) != 1:
            raise ComposeError(f"compose up --scale {scale} created {len(created)} replicas")
        self._wait_ready(created[0])
        self.fleet.undrain(created)  # in the load balancer's upstream
        return created[0], self.fleet.clock() - start

    def _wait_ready(self, replica: str) -> None:
        start = self.fleet.clock()
        while True:
            try:
                self.fleet.docker(["exec", replica, *READY], DOCKER_TIMEOUT)
                return
            except DockerError as exc:  # not ready, or not even running yet: poll on
                last = str(exc)
            if self.fleet.clock() - start >= self.fleet.timeout:
                raise NotServing(f"{replica} not ready after {self.fleet.timeout:g} s ({last})")
            self.fleet.sleep(POLL_INTERVAL)

    def _judge(self, first: bool) -> str | None:
        """Bake the canary (``first``), the way a Swarm update is baked, or read the gates
        once for a later step."""
        if first:
            clock, sleep = self.fleet.clock, self.fleet.sleep
            return rollout_gates.bake_release(self.gates, self.release, clock, sleep)
        rollout_gates.recheck(self.gates.query, {"release": self.release}, 0.0)
        return None

    def _roll_back(self, verdict_at: float) -> None:
        """Old replicas back in the upstream, new ones out of it and removed. Every step is
        tried: a new replica that crashed cannot be drained, and must be removed all the same."""
        clock = self.fleet.clock
        start = clock()
        if self.drained:
            self.fleet.undrain(self.drained)
        out: float | None = 0.0
        try:
            out = self.fleet.drain(self.new) if self.new else 0.0
        except (DockerError, NotServing) as exc:
            self.say(f"model: draining the new replicas: {exc}; removing them all the same")
        self._remove(self.new)
        now = clock()
        took = f"rolled back in {now - start:.1f} s ({now - verdict_at:.1f} s after the verdict"
        if out is not None:
            took += f"; no requests to {self.release} after {out:.1f} s"
        self.say(f"model: {took}); {len(self.old)} replicas of the old release serve")

    def _remove(self, replicas: Sequence[str]) -> None:
        if replicas:
            # docker stop: SIGTERM, so gunicorn finishes what a drained replica still holds.
            self.fleet.docker(["stop", *replicas], DOCKER_TIMEOUT + 30)
            self.fleet.docker(["rm", *replicas], DOCKER_TIMEOUT)


def stale(docker: Docker, container: str | None, config_hash: str, image_id: str) -> bool:
    """Whether Compose would recreate a service's running ``container``: its settings' hash or
    its image differ from what compose.yaml says now."""
    if container is None:
        return False
    c = json.loads(docker(["inspect", container], DOCKER_TIMEOUT))[0]
    labels: dict[str, str] = c["Config"]["Labels"] or {}
    return labels.get("com.docker.compose.config-hash") != config_hash or c["Image"] != image_id


def image_id(docker: Docker, image: str) -> str:
    """The id of a local image, or DockerError when it is not on this machine."""
    return docker(["image", "inspect", "-f", "{{.Id}}", image], DOCKER_TIMEOUT).strip()


def converge(
    compose: Compose,
    fleet: Fleet,
    gates: rollout_gates.Bake,
    repository: Path,
    scale: int | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Bring the stack to compose.yaml (or, with ``scale``, only the replica count), rolling
    changed replicas; the exit status."""
    docker = fleet.docker
    config = json.loads(compose(["config", "--format", "json"], {"MODELFLEET_RELEASE": ""}, True))
    model = config["services"][SERVICE]
    new_image = image_id(docker, model["image"])
    release = release_of(model, new_image)
    env = {"MODELFLEET_RELEASE": release}
    if scale is not None:
        # Like docker compose --no-recreate: running replicas keep their settings.
        scaled = f"{SERVICE}={scale}"
        compose(["up", "-d", "--wait", "--no-recreate", "--scale", scaled], env, False)
        return OK
    running = inspect_replicas(docker, fleet.replicas())
    old = [r for r in running if r.release != release]
    if old:
        say(f"model: {len(old)} of {len(running)} replicas run another release than {release} "
            f"({model['image']}, {new_image[7:19]}): replacing them one at a time")  # fmt: skip
        with rollout_lock(repository, f"image rollout {release}"):
            for previous in {r.image for r in old if r.image != new_image}:
                docker(["tag", previous, f"{model['image']}-previous"], DOCKER_TIMEOUT)
            try:
                say(f"model: {Roll(fleet, compose, env, release, old, gates, say).run()}")
            except (GateFailed, NotServing, DockerError, ComposeError) as failure:
                say(f"model: rolled back: {failure}; the rest of the stack was left as it was")
                return FAILED
    listed = compose(["config", "--hash", BALANCER], env, True).split("\n")
    hashes = dict(line.split(" ", 1) for line in listed if " " in line)
    lb_image = image_id(docker, config["services"][BALANCER]["image"])
    if stale(docker, fleet.balancer(), hashes.get(BALANCER, ""), lb_image):
        say(
            "lb: its image or settings changed; the load balancer holds the one published port "
            "and cannot roll: restarting it once now (requests in those seconds are refused)"
        )
    compose(["up", "-d", "--wait", "--remove-orphans"], env, False)
    return OK


def main(argv: Sequence[str] | None = None, docker: Docker = run_docker) -> int:
    """Command-line entry point; the exit status (0 converged, 1 rolled back, 2 refused)."""
    p = argparse.ArgumentParser(prog="compose_up", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scale", type=int, help="only set the number of model replicas")
    p.add_argument("--repository", type=Path, default=Path("models"))
    args = p.parse_args(argv)
    try:
        fleet, gates = fleet_and_gates(docker)
    except ValueError as exc:
        print(f"up: {exc}", file=sys.stderr)
        return REFUSED
    try:
        return converge(run_compose, fleet, gates, args.repository, args.scale)
    except (Refused, ComposeError, DockerError) as exc:
        print(f"up: {exc}", file=sys.stderr)
        return REFUSED if isinstance(exc, Refused) else FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
