"""Overload is shed, not queued: beyond the fleet's admission (max_conns per replica, its
workers x threads), the load balancer answers 503 JSON with Retry-After at once, readiness
probes keep answering, the upstream never changes and nothing restarts.

CI-sized and bounded: 48 clients for 10 s sending 1,000-row batches to diabetes-gbt, twice the
fleet's 24 admitted requests (3 replicas x 2 workers x 4 threads). Counts are asserted, never
latencies (tests/stack/stackctl.py's ``overload`` measures those for reports).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter

import requests

from bench import models
from tests.stack.stackctl import Stack, overload

CLIENTS = 48
SECONDS = 10
ROWS = 1000
MODEL = "diabetes-gbt"

#: Sourced from the lb container's upstream-sync: the very lookup and readiness probe (1 s) it
#: renders the upstream from. One line per replica address: "<ip> <probe's status>" (0 ready,
#: 1 not ready or unreachable, 2 no answer within the second: busy).
PROBE = (
    'source /usr/local/bin/upstream-sync; for ip in $(resolve); do probe "$ip"; echo "$ip $?"; done'
)
PROBE_OUTCOMES = {"0": "ok", "1": "fail", "2": "busy"}


def batch(stack: Stack, rows: int = ROWS) -> bytes:
    """``rows`` JSON records of the model's training data (the vendored CSV its manifest names,
    cycled), its features named as the stack serves them."""
    features = models.served_features(stack.lb_url)[MODEL]
    manifest = requests.get(f"{stack.lb_url}/models/{MODEL}", timeout=10).json()
    return json.dumps(models.data_rows(manifest["training_data"]["file"], features, rows)).encode()


def lb_exec(stack: Stack, script: str) -> str:
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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for line in lb_exec(self.stack, PROBE).splitlines():
                ip, status = line.split()
                self.results[PROBE_OUTCOMES[status]] += 1
                self.by_replica[ip, PROBE_OUTCOMES[status]] += 1
            self._stop.wait(0.5)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_overload_is_shed_as_json_503_and_the_fleet_stays_up(three_replicas: Stack) -> None:
    stack = three_replicas
    body = batch(stack)
    url = f"{stack.lb_url}/models/{MODEL}/predict"
    state_before = upstream_state(stack)
    changes_before = stack.log_count("upstream now", service="lb")
    containers_before = containers(stack)

    with Prober(stack) as prober:
        result = overload(url, body, clients=CLIENTS, seconds=SECONDS)

    print(
        f"{result.total} requests: {dict(result.statuses)}; accepted p50 "
        f"{result.percentile(0.5) * 1000:.0f} ms, p99 {result.percentile(0.99) * 1000:.0f} ms; "
        f"shed p99 {result.percentile(0.99, shed=True) * 1000:.0f} ms; "
        f"probes {dict(prober.results)}"
    )
    assert result.statuses[200] > 0, result.statuses
    assert result.statuses[503] > 0, f"nothing was shed: {result.statuses}"
    assert set(result.statuses) <= {200, 503}, result.statuses
    assert not result.malformed, result.malformed
    # Every replica kept answering its readiness probe: none said "not ready" or refused, each
    # answered 200 during the run. A probe may still wait past its second behind the
    # replica's admitted predictions ("busy"); upstream-sync keeps such a replica (5 rounds).
    assert prober.results["fail"] == 0, f"readiness probes failed under overload: {prober.results}"
    replicas = {ip for ip, _ in prober.by_replica}
    assert len(replicas) == 3
    assert all(prober.by_replica[ip, "ok"] >= 1 for ip in replicas), prober.by_replica
    state_after = upstream_state(stack)
    assert state_after["modelfleet_upstream_replicas"] == 3
    assert (
        state_after["modelfleet_upstream_last_change_timestamp_seconds"]
        == state_before["modelfleet_upstream_last_change_timestamp_seconds"]
    ), "the upstream was rewritten during the overload"
    assert stack.log_count("upstream now", service="lb") == changes_before
    assert containers(stack) == containers_before, "a container restarted or was OOM-killed"
    # The fleet serves normally right after.
    time.sleep(1)
    assert set(stack.plumber_statuses(20)) == {200}
