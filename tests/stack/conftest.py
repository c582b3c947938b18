"""Fixtures for the stack tests: one real Docker Compose stack per test session.

The stack runs as its own compose project on its own ports, so it never touches a user's
`make up` stack. On CI (CI=true) a missing Docker is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench import models
from tests.stack.stackctl import Load, Stack, require_docker

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/stack/ is a stack test."""
    for item in items:
        if Path(item.fspath).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Start the compose stack once for the session, wait until healthy, tear it down after."""
    require_docker()
    env = {
        "COMPOSE_PROJECT_NAME": os.environ.get("MODELFLEET_TEST_PROJECT", "modelfleet-test"),
        "LB_PORT": os.environ.get("MODELFLEET_TEST_LB_PORT", "18080"),
        "PROMETHEUS_PORT": os.environ.get("MODELFLEET_TEST_PROMETHEUS_PORT", "19090"),
        "REPLICAS": "3",
        # Short intervals keep the live alert test short (see test_stack_monitoring.py).
        "PROMETHEUS_SCRAPE_INTERVAL": "2s",
        "PROMETHEUS_SCRAPE_TIMEOUT": "2s",
        "PROMETHEUS_EVALUATION_INTERVAL": "2s",
        # Workers recycle every 3,000-4,000 requests all session long (the default is 100,000),
        # so every stack test sending traffic also checks that recycling fails no request.
        "MODELFLEET_MAX_REQUESTS": "3000",
        "MODELFLEET_MAX_REQUESTS_JITTER": "1000",
    }
    # The replicas serve a copy of the seed repository, so that the tests that package and roll
    # out models (test_stack_own_models.py) never write into the committed ./models.
    repository = ROOT / "build" / f"models-{env['COMPOSE_PROJECT_NAME']}"
    shutil.rmtree(repository, ignore_errors=True)
    shutil.copytree(
        ROOT / "models",
        repository,
        ignore=shutil.ignore_patterns(".*", "rollouts.jsonl", "rollouts"),
    )
    env["MODELFLEET_MODEL_REPOSITORY"] = str(repository)
    st = Stack(ROOT, env)
    st.compose("down", "-v", "--remove-orphans", check=False)
    # Compose labels the images it builds with the project's name, so images that `make build`
    # built (project modelfleet) are rebuilt, from cache, as this project's: `make up` in a test
    # then finds the images it would build already there and recreates nothing for them.
    st.compose("build", "--quiet", timeout=600)
    started = time.monotonic()
    st.compose("up", "-d", "--wait", "--remove-orphans", timeout=600)
    print(f"stack up in {time.monotonic() - started:.1f} s")
    st.wait_for_replicas(3, timeout=60)
    try:
        yield st
    finally:
        if os.environ.get("MODELFLEET_KEEP_STACK") != "1":
            logs = st.compose("logs", "--no-color", "--tail=200", check=False, capture=True)
            (ROOT / "build").mkdir(exist_ok=True)
            (ROOT / "build" / "stack-test.log").write_text(logs)
            st.compose("--profile", "*", "down", "-v", "--remove-orphans", check=False)


@pytest.fixture
def three_replicas(stack: Stack) -> Iterator[Stack]:
    """A stack with exactly three healthy replicas, restored after the test."""
    stack.scale(3)
    stack.wait_for_replicas(3, timeout=60)
    yield stack
    stack.scale(3)
    stack.wait_for_replicas(3, timeout=60)


@pytest.fixture(scope="module")
def loaded_stack(stack: Stack) -> Stack:
    """The stack after a bounded mixed load, including refused requests, fully scraped.

    Every dashboard panel has data from here on (test_stack_monitoring.py checks each query,
    test_stack_dashboards.py each drawn panel). Module scope: each module loads it afresh, so
    the 1m rates its panels read are recent.
    """
    features = models.served_features(stack.lb_url)["diabetes"]
    not_a_number = "/predict_data?" + models.query(models.record(features, ("x", 3, 1)))
    with Load(stack.lb_url, threads=2, max_requests=3000, max_seconds=8), requests.Session() as s:
        for _ in range(20):
            s.get(stack.lb_url + not_a_number, timeout=5)
            s.post(stack.lb_url + "/models/boston/predict", json=[], timeout=5)
            s.get(stack.lb_url + "/models/nope", timeout=5)
        time.sleep(8)
    # Two evaluation rounds after the last scrape, so recording rules have caught up.
    time.sleep(6)
    return stack


@pytest.fixture(scope="session")
def http(stack: Stack) -> Iterator[requests.Session]:
    """A keep-alive HTTP session for the load balancer."""
    with requests.Session() as session:
        yield session


def pretty(obj: object) -> str:
    """Readable JSON for assertion messages."""
    return json.dumps(obj, indent=1, sort_keys=True)[:2000]
