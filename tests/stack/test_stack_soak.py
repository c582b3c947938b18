"""`make soak`, CI-sized: a minute or two at half the measured capacity on the test stack, whose
workers recycle every 3,000-4,000 requests (conftest.py): no request fails, workers are recycled,
and no replica's memory grows more than 10% after the warm-up."""

from __future__ import annotations

from bench.chaos import table
from bench.faults import replica_env
from bench.soak import MAX_GROWTH, soak
from tests.stack.stackctl import Stack


def test_a_short_soak_with_recycling_fails_nothing_and_holds_memory(stack: Stack) -> None:
    # Enough requests that some worker must reach its limit, wherever the counts stand now:
    # more than every worker's largest limit (max requests + jitter) together.
    per_worker = int(replica_env(stack, "MODELFLEET_MAX_REQUESTS")) + int(
        replica_env(stack, "MODELFLEET_MAX_REQUESTS_JITTER")
    )
    workers = len(stack.container_ids()) * int(replica_env(stack, "MODELFLEET_WORKERS"))
    result = soak(
        stack,
        seconds=75,
        warmup=25,
        capacity_seconds=5,
        every=3,
        until_requests=workers * per_worker,
    )
    print("\n" + table([result]))
    assert result.failed == 0, result.failures
    assert result.details["recycled"] >= 1, "no worker was recycled: the soak did not cover it"
    growth = result.details["growth"]
    assert len(growth) == 3, growth
    assert max(growth.values()) <= MAX_GROWTH, growth
