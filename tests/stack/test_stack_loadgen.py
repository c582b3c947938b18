"""The Locust scenario (services/loadgen/) runs against the real stack without a single error.

No speed thresholds here: the test machine is shared and small. `make load` applies the
scenario's own thresholds (error ratio and p99) to real runs.
"""

from __future__ import annotations

import re

from tests.stack.stackctl import Stack

KINDS = ("plumber", "json-row", "json-batch", "json-columns", "csv", "csv-noheader")


def run_loadgen(stack: Stack, *args: str, **env: str) -> str:
    """`compose run` the loadgen image in the test project (a few seconds, a few users)."""
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    return stack.compose(
        "--profile", "loadtest", "run", "--rm", "--no-deps", "-T", *env_args, "loadgen", *args,
        capture=True, timeout=180,
    )  # fmt: skip


def test_locust_scenario_runs_every_request_kind_with_zero_errors(stack: Stack) -> None:
    out = run_loadgen(
        stack,
        "--headless", "--only-summary", "--users", "6", "--spawn-rate", "6", "--run-time", "6s",
        LOADGEN_MAX_ERROR_RATIO="0", LOADGEN_MAX_P99_MS="0", LOADGEN_PROGRESS_SECONDS="2",
    )  # fmt: skip
    assert "result: PASS" in out, out
    assert "errors by type: none" in out, out
    total = re.search(r"^all requests\s+(\d+)\s+(\d+)\s", out, re.MULTILINE)
    assert total is not None, out
    requests, failures = int(total.group(1)), int(total.group(2))
    assert requests >= 50, out
    assert failures == 0, out
    names = re.findall(r"^(\S+) (\S+)\s+\d+\s+0\s", out, re.MULTILINE)
    assert {kind for kind, _ in names} >= set(KINDS), out
    assert {model for _, model in names} >= {"diabetes", "diabetes-gbt", "boston"}, out
    # Progress lines while it runs.
    assert re.search(r"^\[\s+\d+ s\] users\s+\d+\s+requests", out, re.MULTILINE), out


def test_locust_refuses_a_target_outside_the_project(stack: Stack) -> None:
    try:
        run_loadgen(
            stack,
            "--headless", "--users", "1", "--run-time", "2s", "--host", "http://example.com",
        )  # fmt: skip
    except RuntimeError as exc:
        assert "refusing to start" in str(exc)
        assert "Ramping" not in str(exc)
    else:
        raise AssertionError("loadgen accepted a target outside the project")
