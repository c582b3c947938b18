"""The stack on a two-node swarm on one machine (#14 part 4): `make test-swarm-nodes`.

Not in `make test` (marker ``swarm_nodes``): the second node is a Docker Engine in a container
(services/swarm-node) that needs minutes and a second copy of the images. The host must be in
no swarm (a swarm created here advertises the host's address on the default bridge, which the
second node reaches); the test creates it and leaves it again.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.traffic import Load
from scripts.swarm_nodes import NODE
from scripts.swarm_services import node_state
from tests.stack.stackctl import deployed_on_swarm, require_docker, run_swarm

pytestmark = pytest.mark.swarm_nodes

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {
    "SWARM_STACK": "modelfleet-nodestest",
    "SWARM_NODES": "2",
    "LB_PORT": os.environ.get("MODELFLEET_TEST_NODES_LB_PORT", "38080"),
    "PROMETHEUS_PORT": os.environ.get("MODELFLEET_TEST_NODES_PROMETHEUS_PORT", "39090"),
    "REPLICAS": "2",
    "PROMETHEUS_SCRAPE_INTERVAL": "2s",
    "PROMETHEUS_SCRAPE_TIMEOUT": "2s",
    "PROMETHEUS_EVALUATION_INTERVAL": "2s",
}
STACK = SETTINGS["SWARM_STACK"]
STACK_FILE = ROOT / "build" / "swarm" / f"{STACK}.yaml"
LB_URL = f"http://127.0.0.1:{SETTINGS['LB_PORT']}"
SEED = "/predict_data?pregnant=1&glucose=3&pressure=1"


def swarm(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.swarm ARGS` as make runs it, with this module's settings."""
    return run_swarm(SETTINGS, STACK_FILE, *args)


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def task_nodes() -> list[str]:
    """The node of each running replica."""
    return docker("service", "ps", f"{STACK}_model", "--filter", "desired-state=running",
                  "--format", "{{.Node}} {{.CurrentState}}").splitlines()  # fmt: skip


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[subprocess.CompletedProcess[str]]:
    """The stack on the host's swarm and a second node; all removed after."""
    require_docker()
    state = node_state()["LocalNodeState"]
    if state != "inactive":
        pytest.fail(f"the host must be in no swarm for this test (it is {state}): swarm-down")
    with deployed_on_swarm(SETTINGS, STACK_FILE) as up:
        yield up
    assert not docker("ps", "-aq", "--filter", f"name=^{NODE}$")


def test_replicas_on_both_nodes_serve_through_the_load_balancer(
    two_nodes: subprocess.CompletedProcess[str],
) -> None:
    assert two_nodes.returncode == 0, two_nodes.stderr
    assert f"node {NODE}" in two_nodes.stdout and "joined the swarm as a worker" in two_nodes.stdout
    nodes = {line.split()[0] for line in task_nodes()}
    assert NODE in nodes and len(nodes) == 2, task_nodes()
    with Load(LB_URL, threads=2, max_requests=600, max_seconds=30) as load:
        time.sleep(10)
    print(f"two nodes: {load.result.ok} ok, served by {dict(load.result.served_by)}")
    assert load.result.failed == 0, load.result.failures
    assert len(load.result.served_by) == 2, load.result.served_by


def node_down() -> bool:
    out = docker("node", "ls", "--filter", f"name={NODE}", "--format", "{{.Status}}")
    return out.strip().lower() == "down"


def test_losing_the_second_node_fails_requests_only_until_it_is_detected(
    two_nodes: subprocess.CompletedProcess[str],
) -> None:
    assert two_nodes.returncode == 0, two_nodes.stderr
    with Load(LB_URL, threads=2, rate=40, max_requests=20_000, max_seconds=300) as load:
        time.sleep(5)
        killed = time.monotonic()
        docker("kill", NODE)
        while not node_down() and time.monotonic() - killed < 120:
            time.sleep(0.5)
        detected = time.monotonic() - killed
        assert node_down(), "Swarm did not mark the lost node down in 120 s"
        # Swarm starts the lost replica again on the node that is left.
        while time.monotonic() - killed < 180:
            running = [t for t in task_nodes() if t.split()[1] == "Running"]
            if len(running) == 2 and all(t.split()[0] != NODE for t in running):
                break
            time.sleep(1)
        replaced = time.monotonic() - killed
        time.sleep(20)  # after: no failure at all
        after = load.result.total
    result = load.result
    last = max((t - killed for t in result.failed_at), default=None)
    slow = sum(1 for s in result.seconds if s > 1)
    print(
        f"node lost: marked down after {detected:.1f} s, its replica replaced after "
        f"{replaced:.1f} s; {result.ok} ok, {result.failed} failed "
        f"({dict(result.failures)}), the last {last if last is None else round(last, 1)} s "
        f"after the loss; {after} requests in all, {slow} slower than 1 s, the slowest "
        f"{max(result.seconds):.2f} s (the load balancer retried them on the replica left)"
    )
    assert replaced < 180, task_nodes()
    assert last is None or last <= detected, f"failures {last:.1f} s after the loss"
    r = requests.get(LB_URL + SEED, timeout=10)
    assert r.status_code == 200 and r.json() == {"Answer": ["no"]}
