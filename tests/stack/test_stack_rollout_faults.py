"""Candidates that never become ready, fail on 30% of their requests or add 200 ms to each:
rolled back automatically, under load (issue 12, proofs (i), (ii) and (iv)).

diabetes 1.5.0 is packaged, then its artifact is changed: the replicas refuse to load it (its
checksum is not the manifest's), so the first replica never serves it and the rollout rolls
back after ROLLOUT_TIMEOUT. Then the replicas run the test image
``modelfleet/model-server-faults`` (the served image plus tests/faults/faults.py, never served):
diabetes 1.3.0 raises in 30% of its predictions, so the server answers 500 as for any failing
model, and 1.4.0 takes 200 ms longer per prediction. Both are otherwise the seed model
refitted, so only the errors gate and the latency gate can catch them. The served image is
restored afterwards.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.stack.candidates import ROOT, SEED, Rollout, package, rollout_under_load
from tests.stack.stackctl import Stack

ERRORS, SLOW, NEVER_READY = "1.3.0", "1.4.0", "1.5.0"
BAKE = 10
#: Seconds a replica has to serve the never-ready candidate (ROLLOUT_TIMEOUT, 60 by default).
TIMEOUT = 10
FAULTS = ROOT / "tests" / "faults"
#: What each candidate's verdict names.
REASON = {
    ERRORS: "gate errors ",
    SLOW: "gate latency ",
    NEVER_READY: f"not serving {NEVER_READY} after {TIMEOUT} s",
}


def replicas_up(stack: Stack, *files: str) -> None:
    """Recreate the replicas from compose.yaml with ``files`` laid over it; wait until healthy."""
    layers = [a for f in ("compose.yaml", *files) for a in ("-f", f)]
    stack.compose(*layers, "up", "-d", "--wait", "--no-deps", "model", timeout=240)


@pytest.fixture(scope="module")
def rollouts(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Rollout]]:
    """Each bad candidate rolled out under load."""
    tag = stack.env.get("MODELFLEET_TAG") or "dev"
    subprocess.run(
        ["docker", "build", "-q", "--build-arg", f"MODELFLEET_TAG={tag}",
         "-t", f"modelfleet/model-server-faults:{tag}", str(FAULTS)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    index = stack.repository / "index.json"
    original = index.read_bytes()
    work = tmp_path_factory.mktemp("faults")
    done: dict[str, Rollout] = {}
    try:
        package(stack, work, NEVER_READY)
        artifact = stack.repository / "diabetes" / NEVER_READY / "model.skops"
        artifact.write_bytes(artifact.read_bytes() + b"\0")  # not the manifest's artifact now
        done[NEVER_READY] = rollout_under_load(stack, NEVER_READY, f"ROLLOUT_TIMEOUT={TIMEOUT}")
        replicas_up(stack, str(FAULTS / "compose.yaml"))
        for version in (ERRORS, SLOW):
            package(stack, work, version)
            done[version] = rollout_under_load(stack, version, f"ROLLOUT_BAKE={BAKE}")
        yield done
    finally:
        index.write_bytes(original)
        replicas_up(stack)


@pytest.mark.parametrize("version", [NEVER_READY, ERRORS, SLOW])
def test_a_bad_candidate_is_rolled_back(
    version: str,
    rollouts: dict[str, Rollout],
) -> None:
    verdict = rollouts[version].failed_verdict()
    print(verdict)
    assert REASON[version] in verdict
    rolled_back = rf"rolled back to {SEED} in [\d.]+ s \(no requests to {version} after"
    assert re.search(rolled_back, verdict)
    # After the verdict, no answer comes from the faulty candidate.
    assert rollouts[version].after == {SEED}


@pytest.mark.parametrize("version", [NEVER_READY, SLOW])
def test_a_never_ready_or_slow_candidate_fails_no_client_request(
    version: str,
    rollouts: dict[str, Rollout],
) -> None:
    result = rollouts[version].load.result
    assert result.ok > 1000
    assert result.failed == 0, dict(result.failures)


def test_the_failing_candidate_costs_at_most_its_share_of_one_bake(
    rollouts: dict[str, Rollout],
) -> None:
    """The client sees the candidate's 500s (nginx retries no 500), and only while it bakes:
    at most the requests one replica of three is sent in one bake."""
    result = rollouts[ERRORS].load.result
    seconds = sum(result.seconds) / 4  # four client threads, one request at a time each
    bound = result.total / seconds * BAKE / 3
    print(
        f"client-visible failures: {result.failed} of {result.total} requests "
        f"({dict(result.failures)}); one replica's share of one bake: {bound:.0f}"
    )
    assert 0 < result.failed <= bound
