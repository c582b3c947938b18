"""bench/chaos.py's table and fault selection (the faults themselves need a stack: the stack
tests run them)."""

from __future__ import annotations

import pytest

from bench import chaos
from bench.faults import FaultResult


def row(**kw: object) -> FaultResult:
    base: dict = dict(
        fault="replica SIGKILL", sent=1000, ok=1000, refused=0, failed=0,
        p99_s=0.0123, max_s=0.5, recover_s=12.34, note="restarted",
    )  # fmt: skip
    return FaultResult(**{**base, **kw})


def test_a_fault_passes_within_its_allowed_failures_and_without_problems() -> None:
    assert row().passed
    assert not row(failed=1).passed
    assert row(failed=1, allowed_failures=1).passed
    assert not row(problems=["the upstream was rewritten"]).passed


def test_the_table_has_a_line_per_fault_with_figures_and_a_verdict_each() -> None:
    text = chaos.table(
        [
            row(),
            row(fault="DNS failure 12 s", failed=2, failures={"HTTP 502": 2}),
            row(fault="4 stalled bodies", recover_s=None, p99_s=float("nan"), max_s=float("nan")),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["fault", "sent", "ok", "refused"]
    assert "replica SIGKILL" in lines[2] and " 12 " in lines[2] and "12.3" in lines[2]
    assert lines[4].split()[-4:-1] == ["-", "-", "-"]
    assert "  PASS  replica SIGKILL: failed 0 (allowed 0)" in text
    assert "  FAIL  DNS failure 12 s: failed 2 (allowed 0) failures {'HTTP 502': 2}" in text


def test_faults_are_selected_by_name_in_matrix_order() -> None:
    assert chaos.selected("") == list(chaos.FAULT_NAMES)
    assert chaos.selected("dns, kill") == ["kill", "dns"]
    with pytest.raises(SystemExit, match="unknown fault"):
        chaos.selected("kill,flood")
