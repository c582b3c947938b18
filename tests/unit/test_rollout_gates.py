"""scripts/rollout_gates.py and the bake of ``make rollout`` (issue 12).

Specification: every step of a rollout but the last bakes for ROLLOUT_BAKE seconds while the
gates of rules/rollout.yml compare the candidate version with the stable one. A failing gate
ends the bake at once with a verdict that names the gate and its figures, and the rollout rolls
back; gates that cannot judge (too little traffic) make the step wait up to ROLLOUT_BAKE_LIMIT
and then fail closed, as does a Prometheus that does not answer. The rules' own behaviour is
tested by promtool (monitoring/prometheus/tests/rollout-test.yml); here Prometheus is faked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from model_server.repository import load_index

from tests.loadgen.conftest import load_script
from tests.unit.bench_http import serve
from tests.unit.test_rollout import PROJECT, FakeClock, FakeDocker, Replica, repo

gates = load_script("rollout_gates")
rollout = load_script("rollout")

__all__ = ["repo"]  # the fixture

TOLERANCES = {"errors": 0.02, "latency": 0.1, "prediction_mix": 0.15}


def sample(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [0, str(value)]}


class FakePrometheus:
    """Answers the gates' queries from per-gate excesses; ``None``: not judged (too little
    traffic). Records each query."""

    def __init__(self, excess: dict[str, float] | None, requests: float = 500) -> None:
        self.excess = excess
        self.requests = requests
        self.queries: list[str] = []
        self.down = False
        #: The labels of the candidate's series (a Compose rollout's have no release).
        self.cell = {"model": "churn", "version": "2"}

    def __call__(self, expr: str) -> list[dict[str, Any]]:
        self.queries.append(expr)
        if self.down:
            raise gates.GateError("Prometheus at http://127.0.0.1:9 did not answer: refused")
        name = re.findall(r"[a-z_]+:[a-z_0-9:]+", expr)[0]
        judged = self.excess is not None and self.requests >= 200
        if expr.endswith(" == 1"):  # which series fails the gate
            gate = re.findall(r'gate="([a-z_]+)"', expr)[0]
            return [sample(1, **self.cell, gate=gate)]
        if name == "modelfleet:rollout_gate_tolerance":
            return [sample(v, gate=g) for g, v in TOLERANCES.items()]
        if name == "modelfleet:rollout_gate_min_requests":
            return [sample(200)]
        if name == "model_version_release:modelfleet_rollout_judged_requests:increase30s":
            return [sample(self.requests)]
        if name == "model_version_release_gate:modelfleet_rollout_gate:excess30s":
            return [sample(v, gate=g) for g, v in (self.excess or {}).items()]
        if name == "model_version_release_gate:modelfleet_rollout_gate:failing30s":
            if not judged:
                return []
            assert self.excess is not None
            return [sample(int(v > TOLERANCES[g]), gate=g) for g, v in self.excess.items()]
        if name.endswith("_stable:ratio_increase30s"):
            return [sample(0.0)]
        if name.endswith(":ratio_increase30s"):
            return [sample(0.3)]
        if "share" in name:
            yes = 0.3 if "stable" in name else 1.0
            return [sample(1 - yes, **{"class": "no"}), sample(yes, **{"class": "yes"})]
        if "p99" in name:
            return [sample(0.01 if "stable" in name else 0.25)]
        raise AssertionError(expr)


GOOD = {"errors": 0.0, "latency": 0.004, "prediction_mix": 0.03}


def bake(
    prometheus: FakePrometheus,
    seconds: float = 30,
    limit: float = 120,
    candidate: dict[str, str] | None = None,
) -> Any:
    candidate = candidate or {"model": "churn", "version": "2"}
    clock = FakeClock()
    start = clock.now
    try:
        reading, baked = gates.bake(
            lambda: gates.read(prometheus, candidate), seconds, limit, clock, clock.sleep
        )
        return reading, baked
    finally:
        bake.elapsed = clock.now - start  # type: ignore[attr-defined]


def test_a_good_candidate_bakes_the_whole_bake_time_and_passes() -> None:
    reading, baked = bake(FakePrometheus(GOOD))
    assert baked >= 30 and bake.elapsed < 30 + gates.POLL_INTERVAL + 1e-9  # type: ignore[attr-defined]
    assert reading.judged and reading.failed == []
    assert reading.describe("latency") == "latency +0.004 <= 0.1"


def test_every_query_names_the_model_and_the_candidate_version() -> None:
    prometheus = FakePrometheus(GOOD)
    bake(prometheus, seconds=2)
    for expr in prometheus.queries:
        assert "{" not in expr or '{model="churn", version="2"}' in expr, expr


def test_a_release_is_judged_on_every_model_and_a_failure_names_the_model() -> None:
    """A Swarm image update: the candidate is a release; each gate reads the worst model."""
    prometheus = FakePrometheus({**GOOD, "latency": 0.7})
    prometheus.cell = {"model": "churn", "version": "2", "release": "swarm-new"}
    with pytest.raises(gates.GateFailed) as failed:
        bake(prometheus, candidate={"release": "swarm-new"})
    assert str(failed.value) == (
        "gate latency +0.700 > 0.1 (churn 2: candidate 0.250 s p99, stable 0.010 s p99) "
        "after 0.0 s of bake"
    )
    assert prometheus.queries[0] == (
        "max by (gate) (model_version_release_gate:modelfleet_rollout_gate:failing30s"
        '{release="swarm-new"})'
    )


@pytest.mark.parametrize(
    ("gate", "figures"),
    [
        ("errors", "candidate 0.300 5xx share, stable 0.000 5xx share"),
        ("latency", "candidate 0.250 s p99, stable 0.010 s p99"),
        ("prediction_mix", "class shares: candidate no 0.00, yes 1.00; stable no 0.70, yes 0.30"),
    ],
)
def test_a_failing_gate_ends_the_bake_at_once_naming_the_gate_and_its_figures(
    gate: str, figures: str
) -> None:
    excess = {**GOOD, gate: 0.7}
    with pytest.raises(gates.GateFailed) as failed:
        bake(FakePrometheus(excess))
    tolerance = f"{TOLERANCES[gate]:g}"
    assert str(failed.value) == f"gate {gate} +0.700 > {tolerance} ({figures}) after 0.0 s of bake"
    assert bake.elapsed == 0  # type: ignore[attr-defined]


def test_gates_that_cannot_judge_wait_up_to_the_limit_and_fail_closed() -> None:
    with pytest.raises(gates.GateFailed) as failed:
        bake(FakePrometheus(GOOD, requests=90), seconds=30, limit=60)
    assert str(failed.value) == (
        "gates could not judge in 60 s: 90 prediction requests on the smaller side in 30 s, "
        "the gates need 200"
    )


def test_a_prometheus_that_does_not_answer_fails_closed() -> None:
    prometheus = FakePrometheus(GOOD)
    prometheus.down = True
    with pytest.raises(gates.GateFailed, match=r"^gates unreadable: Prometheus at"):
        bake(prometheus)


def test_the_query_reads_prometheus_http_api() -> None:
    answer = {"status": "success", "data": {"resultType": "vector", "result": [sample(1)]}}
    with serve({"/api/v1/query": (200, answer)}) as (url, seen):
        assert gates.prometheus_query(url)('up{a="b"}') == [sample(1)]
    assert seen[0]["query"] == {"query": ['up{a="b"}']}
    refused = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    with (
        serve({"/api/v1/query": (400, refused)}) as (url, _),
        pytest.raises(gates.GateError, match="did not answer"),
    ):
        gates.prometheus_query(url)("up")
    with (
        serve({"/api/v1/query": (200, refused)}) as (url, _),
        pytest.raises(gates.GateError, match="refused 'up': parse error"),
    ):
        gates.prometheus_query(url)("up")


# ---- the rollout with its bake -----------------------------------------------------------------


def run(
    repo: Path, docker: FakeDocker, prometheus: Callable[[str], Any], bake_s: float = 30
) -> int:
    fleet = rollout.Fleet(docker, PROJECT, 5, clock := FakeClock(), clock.sleep)
    return rollout.rollout(repo, "churn", "2", fleet, gates=rollout.Bake(bake_s, 120, prometheus))


def three(repo: Path) -> FakeDocker:
    return FakeDocker(repo, a=Replica("1"), b=Replica("1"), c=Replica("1"))


def test_each_step_but_the_last_bakes_and_the_verdict_quotes_the_gates(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = three(repo)
    assert run(repo, docker, FakePrometheus(GOOD)) == rollout.OK
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "  replica a", "  baked 30 s on 1 of 3", "  replica b", "  baked 30 s on 2 of 3",
        "  replica c", "  report", "rollout churn 2",
    ]  # fmt: skip
    assert out[-1].startswith("rollout churn 2: OK on 3 replicas in ")
    assert out[-1].endswith(
        "(gates at the last bake: errors +0.000 <= 0.02, latency +0.004 <= 0.1, "
        "prediction_mix +0.030 <= 0.15)"
    )


def test_a_failing_gate_rolls_every_switched_replica_back_and_records_the_verdict(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = three(repo)
    assert run(repo, docker, FakePrometheus({**GOOD, "prediction_mix": 0.7})) == rollout.FAILED
    assert load_index(repo).models["churn"].current == "1"
    assert docker.serving() == {"a": "1", "b": "1", "c": "1"}
    assert docker.signalled() == ["a", "a"]  # to the candidate, and back
    err = capsys.readouterr().err
    assert err.startswith("rollout churn 2: FAILED on replica a: gate prediction_mix +0.700 > 0.15")
    assert "; rolled back to 1 in " in err
    (entry,) = (json.loads(line) for line in (repo / "rollouts.jsonl").read_text().splitlines())
    assert entry["outcome"] == "FAILED" and "gate prediction_mix" in entry["verdict"]


def test_without_a_stable_version_to_compare_with_nothing_bakes(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus = FakePrometheus(None)
    assert run(repo, FakeDocker(repo, a=Replica("1")), prometheus) == rollout.OK
    assert (
        "gates not run: one replica, no stable version to compare with" in capsys.readouterr().out
    )
    assert prometheus.queries == []
    assert run(repo, three(repo), prometheus, bake_s=0) == rollout.OK  # ROLLOUT_BAKE=0
    assert prometheus.queries == []


def test_bake_settings_are_seconds_from_the_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", PROJECT)
    argv = ["--repository", str(repo), "churn", "2"]
    for name, bad in (("ROLLOUT_BAKE", "-1"), ("ROLLOUT_BAKE", "x"), ("ROLLOUT_BAKE_LIMIT", "0")):
        monkeypatch.setenv(name, bad)
        assert rollout.main(argv, three(repo)) == rollout.REFUSED
        assert f"rollout: {name} must be" in capsys.readouterr().err
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROLLOUT_BAKE", "0")
    assert rollout.main(argv, three(repo), FakePrometheus(None)) == rollout.OK


def report(repo: Path) -> dict[str, Any]:
    """The one rollout's report, found through its history line; no partial file beside it."""
    (entry,) = (json.loads(line) for line in (repo / "rollouts.jsonl").read_text().splitlines())
    assert entry["report"].startswith("rollouts/") and entry["report"].endswith("-churn-2.json")
    assert [p.name for p in (repo / "rollouts").iterdir()] == [entry["report"].split("/")[1]]
    body: dict[str, Any] = json.loads((repo / entry["report"]).read_text())
    assert {k: body[k] for k in entry} == entry  # the history line's fields, and more
    return body


def test_the_report_holds_every_switch_and_every_bake_with_its_gates(repo: Path) -> None:
    assert run(repo, three(repo), FakePrometheus(GOOD)) == rollout.OK
    body = report(repo)
    assert body["outcome"] == "OK" and body["from"] == "1" and body["to"] == "2"
    assert [s["replica"] for s in body["steps"]] == ["a", "b", "c"]
    assert all(isinstance(s["switched_seconds"], float) for s in body["steps"])
    assert ["bake" in s for s in body["steps"]] == [True, True, False]  # the last: no stable
    bake_a = body["steps"][0]["bake"]
    assert bake_a["baked_seconds"] == 30.0 and bake_a["requests"] == 500
    assert bake_a["gates"]["latency"] == {
        "judged": True, "failing": False, "excess": 0.004, "tolerance": 0.1,
    }  # fmt: skip
    assert "failure" not in body


def test_the_report_of_a_failed_gate_holds_its_figures_and_the_rollback_timings(
    repo: Path,
) -> None:
    failing = FakePrometheus({**GOOD, "prediction_mix": 0.7})
    assert run(repo, three(repo), failing) == rollout.FAILED
    body = report(repo)
    assert body["outcome"] == "FAILED"
    failure = body["failure"]
    assert failure["replica"] == "a"
    assert failure["reason"].startswith("gate prediction_mix +0.700 > 0.15")
    mix = failure["bake"]["gates"]["prediction_mix"]
    assert mix["failing"] is True and mix["excess"] == 0.7
    assert mix["figures"].startswith("class shares: candidate no 0.00, yes 1.00")
    rollback = body["rollback"]
    assert rollback["verdict"].startswith("rolled back to 1 in ")
    assert isinstance(rollback["seconds"], float)
    assert isinstance(rollback["no_requests_after_seconds"], float)
