"""Drive a running compose stack from tests: compose calls, replicas, bounded load.

Compose and Prometheus go through the benchmark toolkit's helpers (bench.compose, bench.prom),
and requests name the features the stack itself publishes (GET /models), as the benchmarks do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import requests

from bench import models
from bench.compose import Project
from bench.prom import Prometheus

#: The JSON record the bounded load posts to the diabetes model (features from GET /models).
LOAD_VALUES = (1, 148, 72)


def _docker_available() -> str | None:
    """Return why Docker cannot be used here, or None when it can."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"the Docker engine does not answer: {probe.stderr.strip()[:200]}"
    return None


def require_docker() -> None:
    """Skip the calling test when Docker cannot be used here; on CI (CI=true), fail it."""
    reason = _docker_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"stack tests are mandatory on CI, but {reason}")
        pytest.skip(reason)


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

    def log_count(self, text: str, service: str = "model") -> int:
        """How often ``text`` occurs in the service's logs since the stack started."""
        return self.compose("logs", "--no-color", service, capture=True, check=False).count(text)

    def prometheus(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path and return its `data` (PrometheusError unless the
        status is success)."""
        return Prometheus(self.prometheus_url).api(path, **params)


@dataclass
class LoadResult:
    """What a bounded load run saw."""

    ok: int = 0
    failed: int = 0
    failures: Counter = field(default_factory=Counter)
    served_by: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.ok + self.failed


class Load:
    """Bounded concurrent GET and POST traffic through the load balancer.

    Runs in threads until stopped, `max_requests` were sent or `max_seconds` passed, whichever
    comes first, so a failing test can never leave traffic running.
    """

    def __init__(
        self, base_url: str, threads: int = 4, max_requests: int = 50_000, max_seconds: float = 120
    ) -> None:
        self.base_url = base_url
        self.threads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._plumber_path = ""
        self._record: dict[str, Any] = {}

    def _one(self, session: requests.Session, i: int) -> None:
        try:
            if i % 2:
                r = session.get(self.base_url + self._plumber_path, timeout=10)
            else:
                r = session.post(
                    self.base_url + "/models/diabetes/predict", json=self._record, timeout=10
                )
            ok = r.status_code == 200
            why = f"HTTP {r.status_code}"
            served = r.headers.get("X-Served-By", "?")
        except requests.RequestException as exc:
            ok, why, served = False, type(exc).__name__, "-"
        with self._lock:
            if ok:
                self.result.ok += 1
                self.result.served_by[served] += 1
            else:
                self.result.failed += 1
                self.result.failures[why] += 1

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            i = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.result.total >= self.max_requests:
                        return
                self._one(session, i)
                i += 1

    def __enter__(self) -> Load:
        self._plumber_path = models.plumber_path(self.base_url)
        features = models.served_features(self.base_url)["diabetes"]
        self._record = models.record(features, LOAD_VALUES)
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)


@dataclass
class OverloadResult:
    """What a bounded overload run saw: statuses, latencies of the accepted requests, and the
    answers that were neither a 200 nor a well-formed shed answer."""

    statuses: Counter = field(default_factory=Counter)
    accepted_seconds: list[float] = field(default_factory=list)
    shed_seconds: list[float] = field(default_factory=list)
    malformed: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float, shed: bool = False) -> float:
        """The q-quantile (0..1) of the accepted (or shed) requests' latencies, in seconds."""
        values = sorted(self.shed_seconds if shed else self.accepted_seconds)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]


def shed_answer_problem(r: requests.Response) -> str | None:
    """Why a 503 is not the load balancer's shed answer (JSON code ``overloaded`` with
    ``Retry-After: 1``), or None when it is."""
    if r.headers.get("Retry-After") != "1":
        return "503 without Retry-After: 1"
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "503 not JSON in the error shape"
    return None if code == "overloaded" else f"503 {code}"


def overload(
    url: str, body: bytes, clients: int, seconds: float, max_requests: int = 20_000
) -> OverloadResult:
    """POST ``body`` (JSON) to ``url`` from ``clients`` threads, each with its own keep-alive
    session and no think time, for ``seconds`` (and at most ``max_requests`` in all)."""
    result = OverloadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        with requests.Session() as s:
            while time.monotonic() < deadline:
                with lock:
                    if result.total >= max_requests:
                        return
                started = time.monotonic()
                try:
                    r = s.post(url, data=body, headers=headers, timeout=30)
                    status, problem = r.status_code, None
                    if status == 503:
                        problem = shed_answer_problem(r)
                    elif status != 200:
                        problem = f"HTTP {status} {r.headers.get('Content-Type')}"
                except requests.RequestException as exc:
                    status, problem = 0, type(exc).__name__
                elapsed = time.monotonic() - started
                with lock:
                    result.statuses[status] += 1
                    if status == 200:
                        result.accepted_seconds.append(elapsed)
                    elif status == 503:
                        result.shed_seconds.append(elapsed)
                    if problem:
                        result.malformed[problem] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    return result
