"""`make chaos`'s faults, CI-sized: the same functions (bench/faults.py) on the test stack, with
counts asserted (failed requests, restarts, upstream changes) and latencies only printed.

The kill, crash, hung-worker and overload faults have their own tests (test_stack_scaling.py,
test_stack_faults.py, test_stack_overload.py); these are the rest of the matrix.
"""

from __future__ import annotations

import signal

import pytest

from bench import faults
from bench.chaos import table
from tests.stack.stackctl import Stack


def report(result: faults.FaultResult) -> None:
    print("\n" + table([result]))


def test_sigterm_to_a_replica_under_load_fails_no_request(three_replicas: Stack) -> None:
    result = faults.signal_replica(three_replicas, signal.SIGTERM)
    report(result)
    assert result.details["restarted"], result.problems
    assert result.sent > 100
    assert result.failed == 0, result.failures


def test_a_dns_failure_keeps_the_upstream_and_fails_no_request(three_replicas: Stack) -> None:
    result = faults.dns_failure(three_replicas, seconds=6)
    report(result)
    assert result.details["failed_lookups"] >= 1, "the DNS failure did not take"
    assert not result.details["upstream_changed"], result.problems
    assert result.failed == 0, result.failures


def test_slow_header_clients_are_closed_and_others_still_served(three_replicas: Stack) -> None:
    result = faults.slow_headers(three_replicas, connections=50, seconds=15)
    report(result)
    assert result.details["closed"] == 50, result.problems
    assert result.sent > 10
    assert result.failed == 0, result.failures


def test_a_stalled_body_is_given_up_and_never_reaches_a_replica(three_replicas: Stack) -> None:
    result = faults.stalled_body(three_replicas, connections=2)
    report(result)
    assert result.failed == 0, "a stalled request was still open after 20 s"
    assert result.details["reached"] == []


def test_scale_to_zero_answers_json_503_and_comes_back(three_replicas: Stack) -> None:
    result = faults.scale_to_zero(three_replicas, empty_seconds=3)
    report(result)
    assert result.details["empty_answer"] == 503, result.problems
    assert result.refused > 0, "no request saw the empty fleet"
    assert result.failed == 0, result.failures
    assert not result.problems


# More than the load balancer's 8 large bodies at once (nginx.conf): the rest are shed.
@pytest.mark.parametrize("parallel", [12])
def test_largest_bodies_in_parallel_are_all_answered(three_replicas: Stack, parallel: int) -> None:
    result = faults.large_bodies(three_replicas, parallel=parallel, rounds=1)
    report(result)
    assert result.sent == parallel
    assert result.failed == 0, result.failures
