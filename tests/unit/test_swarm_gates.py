"""scripts/swarm_gates.py: the rollout gates judging a Swarm image update (issue 14, part 3).

Specification: while Swarm replaces the replicas one at a time, the replicas of the new release
(the image's unique tag) are compared with those still on the old one by the same gates and
the same bake as `make rollout` (tests/unit/test_rollout_gates.py). A failing gate, or gates
that cannot judge in time, end the judgement with the verdict (the caller rolls back); when
Swarm ends the update itself (an unhealthy image) there is nothing left to judge. Without a
bake or with one replica nothing is judged. Swarm waits between two replicas long enough
for the gates to judge each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts import rollout_gates, swarm_gates
from tests.unit.test_rollout import FakeClock
from tests.unit.test_rollout_gates import GOOD, FakePrometheus, sample

NEW = "swarm-0123456789ab"


class SwarmPrometheus(FakePrometheus):
    """The gates' fake Prometheus, plus the replicas' info: ``scraped`` after that many
    readings of it the new release has a replica scraped."""

    def __init__(self, excess: dict[str, float] | None, scraped: int = 0) -> None:
        super().__init__(excess)
        self.cell = {"model": "diabetes", "version": "1.0.0", "release": NEW}
        self.scraped = scraped

    def __call__(self, expr: str) -> list[dict[str, Any]]:
        if expr.startswith("modelfleet_replica_info"):
            self.queries.append(expr)
            self.scraped -= 1
            return [sample(1, release=NEW)] if self.scraped < 0 else []
        return super().__call__(expr)


def states(*sequence: str) -> Iterator[str]:
    """Swarm's update state, one per call; the last one repeats."""
    yield from sequence
    while True:
        yield sequence[-1]


def judge(
    prometheus: SwarmPrometheus,
    state: Iterator[str],
    replicas: int = 2,
    bake: float = 30,
    limit: float = 120,
) -> str:
    clock = FakeClock()
    update = swarm_gates.Update(NEW, replicas, lambda: next(state))
    gates = rollout_gates.Bake(bake, limit, prometheus)
    return swarm_gates.judge(update, gates, clock, clock.sleep)


def test_a_good_image_is_judged_by_release_until_swarm_completes_the_update() -> None:
    prometheus = SwarmPrometheus(GOOD, scraped=3)
    verdict = judge(prometheus, states(*["updating"] * 40, "completed"))
    assert verdict == (
        f"gates passed after 30 s of bake on {NEW}: errors +0.000 <= 0.02, "
        "latency +0.004 <= 0.1, prediction_mix +0.030 <= 0.15"
    )
    gate_queries = [q for q in prometheus.queries if "rollout_gate:failing30s" in q]
    assert gate_queries and all(f'{{release="{NEW}"}}' in q for q in gate_queries)


def test_a_failing_gate_ends_the_judgement_naming_the_gate_and_the_model() -> None:
    with pytest.raises(rollout_gates.GateFailed) as failed:
        judge(SwarmPrometheus({**GOOD, "latency": 0.7}), states("updating"))
    assert str(failed.value) == (
        "gate latency +0.700 > 0.1 (diabetes 1.0.0: candidate 0.250 s p99, stable 0.010 s p99)"
        " after 0.0 s of bake"
    )


def test_a_gate_failing_after_the_bake_still_ends_the_judgement() -> None:
    prometheus = SwarmPrometheus(GOOD)
    state = states(*["updating"] * 30)

    def worse() -> Iterator[str]:
        for i, s in enumerate(state):
            if i == 25:  # the next replicas answer slower
                prometheus.excess = {**GOOD, "latency": 0.7}
            yield s

    with pytest.raises(
        rollout_gates.GateFailed, match=r"^gate latency \+0.700 > 0.1 .* after the bake"
    ):
        judge(prometheus, worse())


def test_gates_that_cannot_judge_fail_closed() -> None:
    with pytest.raises(rollout_gates.GateFailed, match=r"^no replica of swarm-0123456789ab was"):
        judge(SwarmPrometheus(GOOD, scraped=10**6), states("updating"), limit=60)
    prometheus = SwarmPrometheus(GOOD)
    prometheus.requests = 90
    with pytest.raises(rollout_gates.GateFailed, match=r"^gates could not judge in 120 s: 90 "):
        judge(prometheus, states("updating"))


@pytest.mark.parametrize("state", ["rollback_started", "rollback_completed", "paused"])
def test_an_update_swarm_ended_itself_is_not_judged(state: str) -> None:
    with pytest.raises(swarm_gates.SwarmFinished):
        judge(SwarmPrometheus(GOOD, scraped=5), states("updating", "updating", state))


def test_without_a_bake_or_an_old_replica_nothing_is_judged() -> None:
    prometheus = SwarmPrometheus(GOOD)
    assert judge(prometheus, states("updating"), bake=0) == "gates not run (ROLLOUT_BAKE=0)"
    assert judge(prometheus, states("updating"), replicas=1).startswith("gates not run: one")
    assert prometheus.queries == []


def test_swarm_waits_between_replicas_for_the_bake_and_the_gates_window() -> None:
    assert swarm_gates.update_delay(30) == "70s"
    assert swarm_gates.update_delay(0) == "0s"
