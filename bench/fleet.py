"""A running compose stack of this project, driven from outside: compose calls, its containers
and processes, the load balancer's upstream state. The stack tests (tests/stack/) and
``make chaos`` (:mod:`bench.chaos`) drive the stack through it.

Compose and Prometheus go through :mod:`bench.compose` and :mod:`bench.prom`, and requests name
the features the stack itself publishes (GET /models), as the benchmarks do.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any

import requests

from bench import ROOT, models
from bench.compose import Project
from bench.prom import Prometheus

#: Sourced from the lb container's upstream-sync: the very lookup and readiness probe (1 s) it
#: renders the upstream from. One line per replica address: "<ip> <probe's status>" (0 ready,
#: 1 not ready or unreachable, 2 no answer within the second: busy).
PROBE = (
    'source /usr/local/bin/upstream-sync; for ip in $(resolve); do probe "$ip"; echo "$ip $?"; done'
)
PROBE_OUTCOMES = {"0": "ok", "1": "fail", "2": "busy"}
#: The load balancer's access logs are buffered and flushed every second (nginx: flush=1s):
#: this long after a request, its line is in the log.
ACCESS_LOG_FLUSH_WAIT_S = 2.0


class Stack:
    """A compose project started by the tests, addressed through its published ports."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.project = env["COMPOSE_PROJECT_NAME"]
        self.ctl = Project(env, root=root)
        self.env = self.ctl.env
        self.repository = Path(env["MODELFLEET_MODEL_REPOSITORY"])
        self.lb_url = f"http://127.0.0.1:{env['LB_PORT']}"
        self.prometheus_url = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"

    def compose(
        self, *args: str, check: bool = True, capture: bool = False, timeout: float = 300
    ) -> str:
        """Run scripts/compose (the project's one way to call Compose) for this project; its
        output is kept for the error (a ComposeError, a RuntimeError) when it fails."""
        return self.ctl.run(*args, check=check, capture=capture, quiet=True, timeout=timeout)

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a make target as the README says, on this stack's repository and project."""
        env = {
            **os.environ,
            "MODELFLEET_MODEL_REPOSITORY": str(self.repository),
            "COMPOSE_PROJECT_NAME": self.project,
            # make rollout reads its gates from this stack's Prometheus.
            "PROMETHEUS_PORT": self.prometheus_url.rsplit(":", 1)[1],
        }
        return subprocess.run(
            ["make", "-s", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def container_ids(self, service: str = "model") -> list[str]:
        """IDs of the service's running containers."""
        return self.ctl.running(service)

    @cached_property
    def plumber_path(self) -> str:
        """``/predict_data?...`` with one row (1, 3, 1: answered "no") of the default model's
        features, as the stack's GET /models names them."""
        return models.plumber_path(self.lb_url)

    def inspect(self, ids: list[str]) -> list[dict]:
        """`docker inspect` of the given containers."""
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out)

    def replica_hostnames(self, healthy_only: bool = True) -> set[str]:
        """Hostnames (X-Served-By values) of the running model replicas."""
        names = set()
        for c in self.inspect(self.container_ids()):
            health = c["State"].get("Health", {}).get("Status")
            if healthy_only and health != "healthy":
                continue
            names.add(c["Config"]["Hostname"])
        return names

    def scale(self, replicas: int) -> None:
        """Scale the model service the way `make scale` does."""
        self.compose(
            "up", "-d", "--wait", "--no-recreate", "--scale", f"model={replicas}", timeout=300
        )

    def wait_for_replicas(self, n: int, timeout: float) -> set[str]:
        """Wait until n replicas run healthy and the load balancer reaches exactly those."""
        deadline = time.monotonic() + timeout
        served: set[str] = set()
        running: set[str] = set()
        while time.monotonic() < deadline:
            running = self.replica_hostnames()
            if len(running) == n:
                served = self.served_by(8 * n)
                if served == running:
                    return running
            time.sleep(0.5)
        raise AssertionError(
            f"wanted {n} replicas; running {running}, answering {served}\n" + self.diagnose()
        )

    def diagnose(self) -> str:
        """Each replica's state, restart count, last health probes and last log lines: what
        a failed wait needs to say why a replica did not come up."""
        lines = []
        for c in self.inspect(self.ctl.run("ps", "-aq", "model", capture=True, timeout=60).split()):
            state = c["State"]
            health = state.get("Health", {})
            probes = [p.get("Output", "").strip()[:120] for p in health.get("Log", [])]
            lines.append(
                f"{c['Config']['Hostname']}: {state['Status']} "
                f"health={health.get('Status')} restarts={c['RestartCount']} "
                f"exit={state.get('ExitCode')} started={state.get('StartedAt')} "
                f"probes={probes[-3:]}"
            )
            logs = subprocess.run(
                ["docker", "logs", "--tail", "15", c["Id"]], capture_output=True, text=True
            )
            lines.extend("    " + line for line in (logs.stdout + logs.stderr).splitlines()[-15:])
        return "\n".join(lines)

    def served_by(self, requests_count: int) -> set[str]:
        """The replicas that answer `requests_count` plumber queries through the LB."""
        seen = set()
        with requests.Session() as s:
            for _ in range(requests_count):
                r = s.get(self.lb_url + self.plumber_path, timeout=5)
                if r.status_code == 200:
                    seen.add(r.headers.get("X-Served-By", "?"))
        return seen

    def plumber_statuses(self, n: int, timeout: float = 30) -> list[int]:
        """Statuses of ``n`` plumber GETs over one keep-alive session (0: no answer)."""
        statuses = []
        with requests.Session() as s:
            for _ in range(n):
                try:
                    r = s.get(self.lb_url + self.plumber_path, timeout=timeout)
                    statuses.append(r.status_code)
                except requests.RequestException:
                    statuses.append(0)
        return statuses

    def log_count(self, text: str, since: float, service: str = "model") -> int:
        """How often ``text`` occurs in the service's logs since ``since`` (a ``time.time()``).

        Counted from a time, not as a difference of totals: a container's log is rotated
        (compose.yaml's x-logging, 3 files of 10 MB), so a busy load balancer's oldest lines
        are gone by the end of a test session and a total can fall.
        """
        logs = self.compose(
            "logs", "--no-color", "--since", f"{since:.6f}", service, capture=True, check=False
        )
        return logs.count(text)

    def access_log(self, since: float | None = None, service: str = "lb") -> list[dict[str, Any]]:
        """The service's JSON log lines (since ``since``, a ``time.time()``, or all): for the
        load balancer, the balancer tier's access log entry of every proxied request and the
        front tier's of what it answers itself (nginx/common.conf's ``json`` format). nginx
        flushes them every second: wait :data:`ACCESS_LOG_FLUSH_WAIT_S` after the requests."""
        window = [] if since is None else ["--since", f"{since:.6f}"]
        logs = self.compose(
            "logs", "--no-color", "--no-log-prefix", *window, service, capture=True, check=False
        )
        entries = []
        for line in logs.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        return entries

    def prometheus(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path and return its `data` (PrometheusError unless the
        status is success)."""
        return Prometheus(self.prometheus_url).api(path, **params)


def running_stack(root: Path = ROOT) -> Stack:
    """The stack ``make up`` started (or the project ``COMPOSE_PROJECT_NAME`` names), with the
    ports it really published, so no default is repeated from compose.yaml."""
    name = os.environ.get("COMPOSE_PROJECT_NAME", "")
    probe = Project({"COMPOSE_PROJECT_NAME": name or "modelfleet"}, root=root)
    if not name:
        # compose.yaml's own default project name, resolved by compose.
        name = str(probe.config().get("name", "modelfleet"))
        probe = Project({"COMPOSE_PROJECT_NAME": name}, root=root)
    ports = {}
    for service, port in (("lb", "8080"), ("prometheus", "9090")):
        published = probe.run("port", service, port, capture=True, check=False, timeout=60)
        if not published.strip():
            raise RuntimeError(
                f"project {name}: {service} publishes no port {port}: is the stack up (make up)?"
            )
        ports[service] = published.strip().rsplit(":", 1)[1]
    repository = os.environ.get("MODELFLEET_MODEL_REPOSITORY", str(root / "models"))
    env = {
        "COMPOSE_PROJECT_NAME": name,
        "LB_PORT": ports["lb"],
        "PROMETHEUS_PORT": ports["prometheus"],
        "MODELFLEET_MODEL_REPOSITORY": repository,
    }
    return Stack(root, env)


def worker_pids(stack: Stack, container: str) -> list[int]:
    """Host PIDs of the gunicorn workers of one replica.

    The container's PID 1 is Docker's init (compose.yaml's ``init: true``), its child the
    gunicorn master, and the master's children the workers.
    """
    init = stack.inspect([container])[0]["State"]["Pid"]
    out = subprocess.run(
        ["docker", "top", container, "-eo", "pid,ppid"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    parent = {int(pid): int(ppid) for pid, ppid in (line.split() for line in out.splitlines()[1:])}
    masters = {pid for pid, ppid in parent.items() if ppid == init}
    return sorted(pid for pid, ppid in parent.items() if ppid in masters)


def lb_exec(stack: Stack, script: str) -> str:
    """Run a bash script in the load balancer's container; its stdout."""
    lb = stack.container_ids("lb")[0]
    return subprocess.run(
        ["docker", "exec", lb, "bash", "-c", script],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip


def upstream_state(stack: Stack) -> dict[str, float]:
    """upstream-sync's exported state (lb:8081/upstream-sync/metrics), from its file."""
    text = lb_exec(stack, "cat /run/nginx/upstream-sync.prom")
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def containers(stack: Stack) -> dict[str, tuple[int, str, bool]]:
    """Every container of the project: restart count, start time, OOM-killed."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    return {
        c["Name"]: (c["RestartCount"], c["State"]["StartedAt"], c["State"]["OOMKilled"])
        for c in stack.inspect(ids)
    }


class Prober:
    """Runs upstream-sync's readiness probe on every replica, round after round, until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.results: Counter = Counter()
        self.by_replica: Counter = Counter()
        #: The longest run of busy probes in a row, per replica (upstream-sync takes a replica
        #: out after UPSTREAM_PROBE_BUSY_ROUNDS of them).
        self.longest_busy: Counter = Counter()
        self._busy_run: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for line in lb_exec(self.stack, PROBE).splitlines():
                ip, status = line.split()
                outcome = PROBE_OUTCOMES[status]
                self.results[outcome] += 1
                self.by_replica[ip, outcome] += 1
                self._busy_run[ip] = self._busy_run[ip] + 1 if outcome == "busy" else 0
                self.longest_busy[ip] = max(self.longest_busy[ip], self._busy_run[ip])
            self._stop.wait(0.5)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
