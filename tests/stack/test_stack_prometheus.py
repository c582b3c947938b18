"""Prometheus scrapes every replica individually and follows scaling."""

from __future__ import annotations

import time

import requests

from tests.stack.stackctl import Stack


def _model_targets_up(stack: Stack) -> int:
    data = stack.prometheus("/api/v1/targets", state="active")
    return sum(
        1
        for t in data["activeTargets"]
        if t["labels"].get("job") == "model" and t["health"] == "up"
    )


def _wait_targets(stack: Stack, n: int, timeout: float = 45) -> int:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = _model_targets_up(stack)
        if seen == n:
            return seen
        time.sleep(1)
    return seen


def test_prometheus_has_one_up_target_per_replica_and_follows_scaling(
    three_replicas: Stack,
) -> None:
    stack = three_replicas
    assert _wait_targets(stack, 3) == 3
    stack.scale(4)
    assert _wait_targets(stack, 4) == 4
    stack.scale(3)
    assert _wait_targets(stack, 3) == 3


def test_every_replica_exports_its_hostname_as_replica_label(three_replicas: Stack) -> None:
    stack = three_replicas
    deadline = time.monotonic() + 30
    replicas: set[str] = set()
    while time.monotonic() < deadline:
        result = stack.prometheus("/api/v1/query", query='modelfleet_replica_info{job="model"}')
        replicas = {s["metric"]["replica"] for s in result["result"]}
        if replicas == stack.replica_hostnames():
            break
        time.sleep(1)
    assert replicas == stack.replica_hostnames()


BOSTON_PLUMBER = (
    "/models/boston/predict_data?crim=0.01&zn=18&indus=2.3&chas=0&nox=0.5&rm=6&age=65"
    "&dis=4&rad=1&tax=242"
)
BOSTON_PLUMBER_REQUESTS = 'sum(modelfleet_requests_total{model="boston",endpoint="plumber"})'


def _scalar(stack: Stack, expr: str) -> float:
    result = stack.prometheus("/api/v1/query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _settled(stack: Stack, expr: str) -> float:
    """The value of expr once two consecutive reads a few scrapes apart agree."""
    previous = _scalar(stack, expr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(5)
        current = _scalar(stack, expr)
        if current == previous:
            return current
        previous = current
    raise AssertionError(f"{expr} did not settle within 60 s")


def test_request_counters_move_by_exactly_the_requests_sent(three_replicas: Stack) -> None:
    """Exact under gunicorn's multiprocess mode, summed over every worker of every replica."""
    stack = three_replicas
    before = _settled(stack, BOSTON_PLUMBER_REQUESTS)
    n = 150
    with requests.Session() as s:
        for _ in range(n):
            assert s.get(stack.lb_url + BOSTON_PLUMBER, timeout=5).status_code == 200
    after = _settled(stack, BOSTON_PLUMBER_REQUESTS)
    assert after - before == n
