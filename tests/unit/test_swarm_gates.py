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
    assert swarm_gates.update_delay(30) == 70
    assert swarm_gates.update_delay(0) == 0


class FakeService:
    """The replicas' service as `docker service inspect` reports it, and the docker commands
    run against it: a rollback puts the old image back."""

    def __init__(self) -> None:
        self.status = {"image": "m:swarm-new", "state": "updating", "started": "t1", "message": ""}
        self.commands: list[tuple[str, ...]] = []

    def docker(self, *args: str, timeout: float = 120) -> str:
        self.commands.append(args)
        if args[:2] == ("service", "rollback"):
            self.status.update(image="m:swarm-old", state="rollback_completed", started="t2")
        return ""


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> FakeService:
    fake = FakeService()
    monkeypatch.setattr(swarm_gates, "docker", fake.docker)
    monkeypatch.setattr(swarm_gates, "service_status", lambda: {"model": dict(fake.status)})
    return fake


def judge_update(before: dict[str, str], prometheus: SwarmPrometheus) -> None:
    clock = FakeClock()
    gates = rollout_gates.Bake(10, 60, prometheus)
    replicas = {"deploy": {"replicas": 2}}
    swarm_gates.judge_update(before, NEW, replicas, gates, 600, clock, clock.sleep)


def test_an_image_failing_a_gate_is_rolled_back_with_the_verdict(service: FakeService) -> None:
    before = {"image": "m:swarm-old", "state": "completed", "started": "t0", "message": ""}
    with pytest.raises(swarm_gates.RolledBackByGates) as failed:
        judge_update(before, SwarmPrometheus({**GOOD, "errors": 0.5}))
    assert service.commands == [("service", "rollback", "--detach", "modelfleet_model")]
    assert str(failed.value).startswith(
        "model: rolled back by the gates (rollback_completed): gate errors +0.500 > 0.02 "
    )
    assert str(failed.value).endswith("; it serves m:swarm-old")


def test_the_state_of_the_previous_update_is_not_taken_for_this_ones_end(
    service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    # Until Swarm starts this update, the status still shows the last one, rolled back.
    before = {"image": "m:swarm-old", "state": "rollback_completed", "started": "t0"}
    service.status.update(state="rollback_completed", started="t0")

    class StartedLater(SwarmPrometheus):
        def __call__(self, expr: str) -> list[dict[str, Any]]:
            service.status.update(state="completed", started="t1")  # by the end of the bake
            return super().__call__(expr)

    judge_update(before, StartedLater(GOOD, scraped=2))
    assert "model: gates passed after 10 s of bake on" in capsys.readouterr().out
    assert service.commands == []


def test_judging_stops_when_swarm_does_not_complete_the_update_in_time(
    service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {"image": "m:swarm-old", "state": "completed", "started": "t0"}
    judge_update(before, SwarmPrometheus(GOOD))  # "updating" for ever
    assert "model: gates passed after 10 s of bake on" in capsys.readouterr().out
