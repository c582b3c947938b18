"""The replicas a rollout switches, seen through ``docker``: list them, drain them from the load
balancer, switch their version, and probe what they serve (scripts/rollout.py drives it).

A switch replaces the replica's gunicorn workers (SIGHUP). gunicorn stops the old workers as
soon as it has forked the new ones, and the new ones load every model before they accept: on a
busy replica the requests in between wait in its backlog. So a replica is first drained:
its readiness answers 503 ``draining``, upstream-sync takes it out of the load balancer, and
only then is it switched; it is put back once it serves the new version. With one replica
there is nowhere else to send its traffic, and it is switched in place.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: SIGHUP to the container's init (docker-init, which passes it to the gunicorn master), sent
#: from inside. Not ``docker kill --signal HUP``: Docker marks a container signalled that way as
#: stopped by hand, so its ``unless-stopped`` policy no longer restarts it when it later crashes
#: (moby/moby#41302, still so in Docker 20.10 here: a replica killed after a rollout stayed
#: down). bash's builtin ``kill``: the slim image has no /bin/kill.
HUP = ("bash", "-c", "kill -HUP 1")
SERVICE = "model"
#: The load balancer's service, and the upstream its upstream-sync renders (nginx/upstream-sync.sh).
BALANCER = "lb"
UPSTREAM_CONF = "/run/nginx/upstream.conf"
#: Seconds the load balancer may take to stop (or start) sending a replica requests: a few
#: rounds of upstream-sync (UPSTREAM_SYNC_INTERVAL, 2 s) and a reload.
ROUTE_TIMEOUT = 20.0
#: Inside a replica: start or stop draining (model_server/settings.py, drain_file).
DRAIN = ("bash", "-c", ': >"${MODELFLEET_DRAIN_FILE:-/tmp/modelfleet.drain}"')
UNDRAIN = ("bash", "-c", 'rm -f "${MODELFLEET_DRAIN_FILE:-/tmp/modelfleet.drain}"')
#: Seconds between two probes of a replica that does not serve the version yet.
POLL_INTERVAL = 0.5
#: Seconds one docker command may take (a probe is at most 9 requests of at most 2 s each).
DOCKER_TIMEOUT = 30.0
#: Answers asked per probe: a replica's old workers finish their requests after its new ones
#: start, so one answer says nothing about the replica's other workers.
PROBE_REQUESTS = 8
# Run inside a replica as `python3 -c PROBE NAME`; prints {"ready": bool, "versions": [...]}. A
# refused or failed request (workers being replaced) is an answer too (None, or the HTTP status
# and error code of a refusal, e.g. "HTTP 503 model_unavailable" for a version that did not
# load), never an error, so that the caller keeps polling until its timeout.
PROBE = f"""
import json, sys, urllib.error, urllib.request
def get(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080" + path, timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        try:
            return refused.code, json.load(refused)
        except Exception:
            return refused.code, {{}}
    except Exception:
        return None, {{}}
def version(status, body):
    if status == 200:
        return body.get("version")
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return None if status is None else f"HTTP {{status}} {{code or ''}}".strip()
status, body = get("/readyz")
# Draining (the rollout asked for it) is ready: its models are loaded.
ready = status == 200 or body.get("status") == "draining"
versions = [version(*get("/models/" + sys.argv[1])) for _ in range({PROBE_REQUESTS})]
print(json.dumps({{"ready": ready, "versions": versions}}))
"""

#: ``docker(args, timeout)``: the standard output of ``docker <args>``; DockerError if it fails.
Docker = Callable[[Sequence[str], float], str]


class DockerError(RuntimeError):
    """A docker command failed or timed out; the message is one line."""


class NotServing(RuntimeError):
    """A replica did not serve the version in time; the message says what it answered."""


def run_docker(args: Sequence[str], timeout: float) -> str:
    """Run ``docker <args>`` (an argument list, no shell) and return its standard output."""
    try:
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker {args[0]} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise DockerError(f"docker: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise DockerError(f"docker {args[0]}: {lines[-1]}")
    return proc.stdout


@dataclass(frozen=True)
class Fleet:
    """A compose project's replicas: docker, the wait per replica, and the clock to wait by."""

    docker: Docker
    project: str
    timeout: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def replicas(self) -> list[str]:
        """The ids of the project's running model containers (compose labels them)."""
        return self.docker(["ps", "-q", *self._filters(SERVICE)], DOCKER_TIMEOUT).split()

    def every_replica(self) -> list[str]:
        """The ids of all the project's model containers, stopped ones too (Compose counts
        them when it scales)."""
        return self.docker(["ps", "-aq", *self._filters(SERVICE)], DOCKER_TIMEOUT).split()

    def balancer(self) -> str | None:
        """The id of the project's running load balancer, or None."""
        ids = self.docker(["ps", "-q", *self._filters(BALANCER)], DOCKER_TIMEOUT).split()
        return ids[0] if ids else None

    def address(self, replica: str) -> str:
        """The replica's IP address on the project's network."""
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        found = self.docker(["inspect", "-f", fmt, replica], DOCKER_TIMEOUT).split()
        if not found:
            raise DockerError(f"docker inspect: replica {replica} has no address")
        return found[0]

    def routed(self, balancer: str) -> set[str]:
        """The addresses in the load balancer's upstream now."""
        text = self.docker(["exec", balancer, "cat", UPSTREAM_CONF], DOCKER_TIMEOUT)
        return set(re.findall(r"^server ([0-9.]+):", text, re.MULTILINE))

    def drain(self, replicas: Sequence[str]) -> float | None:
        """Drain ``replicas`` and wait until the load balancer sends them nothing new; the
        seconds it took, None without a load balancer to ask. NotServing after ROUTE_TIMEOUT."""
        for replica in replicas:
            self.docker(["exec", replica, *DRAIN], DOCKER_TIMEOUT)
        return self._wait_routed(replicas, routed=False)

    def undrain(self, replicas: Sequence[str]) -> float | None:
        """Stop draining ``replicas`` and wait until the load balancer sends them requests
        again; as :meth:`drain`."""
        for replica in replicas:
            self.docker(["exec", replica, *UNDRAIN], DOCKER_TIMEOUT)
        return self._wait_routed(replicas, routed=True)

    def _wait_routed(self, replicas: Sequence[str], routed: bool) -> float | None:
        balancer = self.balancer()
        if balancer is None:
            return None
        start = self.clock()
        addresses = {self.address(replica) for replica in replicas}
        while True:
            now = self.routed(balancer)
            if (addresses <= now) if routed else not (addresses & now):
                return self.clock() - start
            if self.clock() - start >= ROUTE_TIMEOUT:
                state = "back in" if routed else "out of"
                raise NotServing(f"not {state} the load balancer after {ROUTE_TIMEOUT:g} s")
            self.sleep(POLL_INTERVAL)

    def _filters(self, service: str) -> list[str]:
        filters = [
            f"label=com.docker.compose.project={self.project}",
            f"label=com.docker.compose.service={service}",
        ]
        return [a for f in filters for a in ("--filter", f)]

    def switch(self, replica: str, name: str, version: str, drain: bool = False) -> float:
        """SIGHUP ``replica``, then probe it until it is ready and every answer names ``version``;
        with ``drain``, out of the load balancer meanwhile (drained first, put back after).

        Returns the seconds it took. Raises DockerError if a docker command fails, NotServing
        after ``timeout`` seconds, saying what the replica answered last (the replica is then
        left drained: the caller rolls back).
        """
        start = self.clock()
        if drain:
            self.drain([replica])
        self.docker(["exec", replica, *HUP], DOCKER_TIMEOUT)
        probe = ["exec", replica, "python3", "-c", PROBE, name]
        while True:
            try:
                answer = json.loads(self.docker(probe, DOCKER_TIMEOUT))
                versions = set(answer["versions"])
                if answer["ready"] and versions == {version}:
                    if drain:
                        self.undrain([replica])
                    return self.clock() - start
                served = ", ".join(sorted("no answer" if v is None else str(v) for v in versions))
                last = f"answers {served}" if answer["ready"] else "not ready (/readyz)"
            except (DockerError, ValueError, KeyError, TypeError) as exc:
                # A container being restarted, or a garbled probe: poll on until the timeout.
                last = str(exc)
            if self.clock() - start >= self.timeout:
                raise NotServing(f"not serving {version} after {self.timeout:g} s ({last})")
            self.sleep(POLL_INTERVAL)
