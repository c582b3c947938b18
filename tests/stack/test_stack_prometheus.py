"""Prometheus scrapes every replica individually and follows scaling."""

from __future__ import annotations

import time

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
