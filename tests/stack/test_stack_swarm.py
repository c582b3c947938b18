"""The stack on a one-node Docker Swarm (`make swarm-up`, `swarm-scale`, `swarm-down`, #14).

Its own stack name and ports beside the session's Compose stack, one replica to start with (the
two share the machine's cores). `swarm-up` creates a one-node swarm when the host is in none and
`swarm-down` leaves it again; a swarm the host already belonged to is left as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench import models
from tests.monitoring import queries
from tests.stack.stackctl import Load, deployed_on_swarm, run_swarm

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = {
    "SWARM_STACK": "modelfleet-swarmtest",
    "LB_PORT": os.environ.get("MODELFLEET_TEST_SWARM_LB_PORT", "28080"),
    "PROMETHEUS_PORT": os.environ.get("MODELFLEET_TEST_SWARM_PROMETHEUS_PORT", "29090"),
    "REPLICAS": "1",
    # How long Swarm gives an unready replica before it rolls its image back (default 90 s).
    "MODEL_START_PERIOD": "20s",
    # Short bakes keep make test short; the gates' windows and tolerances are the stack's own.
    "ROLLOUT_BAKE": "10",
    "ROLLOUT_BAKE_LIMIT": "60",
    "PROMETHEUS_SCRAPE_INTERVAL": "2s",
    "PROMETHEUS_SCRAPE_TIMEOUT": "2s",
    "PROMETHEUS_EVALUATION_INTERVAL": "2s",
}
#: Not make swarm-config's build/swarm/stack.yaml, which may be a user's.
STACK_FILE = ROOT / "build" / "swarm" / f"{SETTINGS['SWARM_STACK']}.yaml"
LB_URL = f"http://127.0.0.1:{SETTINGS['LB_PORT']}"
PROM_URL = f"http://127.0.0.1:{SETTINGS['PROMETHEUS_PORT']}"


def swarm(*args: str, timeout: float = 600, **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.swarm ARGS` as make runs it, with this module's settings."""
    return run_swarm({**SETTINGS, **settings}, STACK_FILE, *args, timeout=timeout)


@pytest.fixture(scope="module")
def swarm_stack() -> Iterator[subprocess.CompletedProcess[str]]:
    """The stack deployed on the swarm (the session's images, tagged for it); removed after,
    and the swarm left when this created it."""
    with deployed_on_swarm(SETTINGS, STACK_FILE) as up:
        yield up


def test_swarm_up_serves_the_seed_answer_through_the_load_balancer(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    assert "images modelfleet/model-server:swarm-" in swarm_stack.stdout
    r = requests.get(LB_URL + "/predict_data?pregnant=1&glucose=3&pressure=1", timeout=10)
    assert r.status_code == 200 and r.json() == {"Answer": ["no"]}
    services = subprocess.run(
        ["docker", "service", "inspect", f"{SETTINGS['SWARM_STACK']}_model", "--format",
         "{{json .Spec}}"], capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    spec = json.loads(services)
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    task = spec["TaskTemplate"]["ContainerSpec"]
    assert task["Image"].split(":")[-1].startswith("swarm-")  # tagged for this build
    assert task["ReadOnly"] is True and task["CapabilityDrop"] == ["ALL"]


def test_swarm_scale_puts_each_replica_in_the_upstream_and_prometheus(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    scaled = swarm("scale", "2", timeout=300)
    assert scaled.returncode == 0, scaled.stderr
    assert "2 replicas, each in the load balancer and scraped" in scaled.stdout
    with Load(LB_URL, threads=2, max_requests=400, max_seconds=20) as load:
        time.sleep(5)
    assert load.result.failed == 0, load.result.failures
    assert len(load.result.served_by) == 2, load.result.served_by


def test_every_dashboard_panel_query_returns_data_on_the_swarm(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    features = models.served_features(LB_URL)["diabetes"]
    not_a_number = "/predict_data?" + models.query(models.record(features, ("x", 3, 1)))
    with Load(LB_URL, threads=2, max_requests=2000, max_seconds=8), requests.Session() as s:
        for _ in range(20):
            s.get(LB_URL + not_a_number, timeout=5)
            s.post(LB_URL + "/models/boston/predict", json=[], timeout=5)
            s.get(LB_URL + "/models/nope", timeout=5)
        time.sleep(8)
    time.sleep(6)  # two evaluation rounds after the last scrape
    empty = []
    for uid, title, expr in queries.dashboard_queries(two_versions=False):
        r = requests.get(PROM_URL + "/api/v1/query", params={"query": expr}, timeout=10)
        if not r.json()["data"]["result"]:
            empty.append(f"{uid} / {title}: {expr}")
    assert not empty, "panel queries without series on the swarm:\n" + "\n".join(empty)


BASE_TAG = os.environ.get("MODELFLEET_TAG", "dev")
IMAGES = ("modelfleet/model-server", "modelfleet/nginx", "modelfleet/prometheus")


def candidate(tag: str, *dockerfile_lines: str) -> None:
    """Images under `tag`: the model server's with `dockerfile_lines` on top, the others as
    built (so only the replicas' image differs)."""
    dockerfile = "\n".join([f"FROM {IMAGES[0]}:{BASE_TAG}", *dockerfile_lines]) + "\n"
    subprocess.run(
        ["docker", "build", "-q", "-t", f"{IMAGES[0]}:{tag}", "-"],
        input=dockerfile, text=True, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    for image in IMAGES[1:]:
        subprocess.run(["docker", "tag", f"{image}:{BASE_TAG}", f"{image}:{tag}"], check=True)


def remove_candidate(tag: str) -> None:
    subprocess.run(["docker", "image", "rm", *(f"{i}:{tag}" for i in IMAGES)],
                   check=False, capture_output=True)  # fmt: skip


def model_image() -> str:
    return subprocess.run(
        ["docker", "service", "inspect", f"{SETTINGS['SWARM_STACK']}_model", "--format",
         "{{.Spec.TaskTemplate.ContainerSpec.Image}}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip().split("@")[0]  # fmt: skip


# About 3 minutes (Swarm waits the bake and the gates' window between replicas): in
# `make test-long`. make test proves a good image on Compose (test_stack_image_rollout.py),
# judged by the same gates, and Swarm's rollbacks below.
@pytest.mark.long
def test_a_new_image_rolls_one_replica_at_a_time_without_a_failed_request(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    # Two replicas of the old image first (make test-long runs this test alone), so that the
    # first new one is judged against an old one on the same traffic.
    scaled = swarm("scale", "2", timeout=300)
    assert scaled.returncode == 0, scaled.stderr
    before = model_image()
    candidate("swarmtest-good", "LABEL org.opencontainers.image.description=swarm-test-good")
    try:
        with Load(LB_URL, threads=2, rate=30, max_requests=20_000, max_seconds=400) as load:
            updated = swarm("up", MODELFLEET_TAG="swarmtest-good", REPLICAS="2")
        assert updated.returncode == 0, updated.stderr
    finally:
        remove_candidate("swarmtest-good")
    assert "model: updated to modelfleet/model-server:swarm-" in updated.stdout
    # Judged by the rollout gates against the old image's replica, on the same traffic.
    assert "model: gates passed after 1" in updated.stdout
    # Only the replicas' image changed: the load balancer and Prometheus were left running.
    assert "lb: updated" not in updated.stdout and "load balancer's image" not in updated.stdout
    assert model_image() != before
    print(f"good image under load: {load.result.ok} ok, {load.result.failed} failed")
    assert load.result.ok > 0 and load.result.failed == 0, load.result.failures


def refused_update(tag: str, lines: list[str], threads: int, rate: float) -> tuple[str, float]:
    """Deploy a candidate image (``lines`` on the model server's) under load, which must be
    refused: the deploy's stderr and seconds. The old image still serves, and no request
    failed while it was tried and rolled back."""
    before = model_image()
    candidate(tag, *lines)
    try:
        with Load(LB_URL, threads=threads, rate=rate, max_requests=20_000, max_seconds=400) as load:
            started = time.monotonic()
            refused = swarm("up", MODELFLEET_TAG=tag, REPLICAS="2")
            took = time.monotonic() - started
    finally:
        remove_candidate(tag)
    result = load.result
    print(f"{tag}: verdict in {took:.0f} s; {result.ok} ok, {result.failed} failed")
    assert refused.returncode == 1
    assert model_image() == before
    r = requests.get(LB_URL + "/predict_data?pregnant=1&glucose=3&pressure=1", timeout=10)
    assert r.status_code == 200 and r.json() == {"Answer": ["no"]}
    assert result.ok > 0 and result.failed == 0, result.failures
    return refused.stderr, took


def test_an_image_that_never_becomes_healthy_is_rolled_back_by_swarm(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    # Runs, never serves: its healthcheck fails once the start period (20 s here) is over.
    unready = ['ENTRYPOINT ["sleep", "infinity"]', "CMD []"]
    stderr, _ = refused_update("swarmtest-unready", unready, threads=2, rate=30)
    assert "model: Swarm did not complete the update (rollback_completed" in stderr


#: Every prediction 0.2 s slower: healthy, every answer right, only the latency gate sees it.
SLOW = [
    "USER root",
    r"RUN sed -i 's/^\(\s*\)\(.*Predict a validated.*\)$/\1\2\n\1__import__(\"time\").sleep(0.2)/'"
    " /app/model_server/core/predict.py && grep -q 'sleep(0.2)' /app/model_server/core/predict.py",
    "USER 10001:10001",
]


def test_an_image_that_fails_a_gate_is_rolled_back_by_the_gates(
    swarm_stack: subprocess.CompletedProcess[str],
) -> None:
    assert swarm_stack.returncode == 0, swarm_stack.stderr
    # Four clients: a slow replica holds each for 0.2 s, and each side needs 200 requests in
    # the gates' 30 s window.
    stderr, _ = refused_update("swarmtest-slow", SLOW, threads=4, rate=40)
    assert "model: rolled back by the gates (rollback_completed): gate latency" in stderr
