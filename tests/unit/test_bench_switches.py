"""bench/switches.py: the verdict of `make switches` from its memory readings."""

from __future__ import annotations

from bench.switches import MAX_GROWTH, SwitchResult

MIB = 2**20


def test_memory_within_ten_percent_of_the_first_reading_passes() -> None:
    result = SwitchResult(200 * MIB, [230 * MIB, 210 * MIB, 219 * MIB])
    assert round(result.growth, 3) == 0.095 <= MAX_GROWTH
    assert result.line() == (
        "anonymous memory: 200.0 MiB, after 3 switches 219.0 MiB (max 230.0, +9.5%): OK"
    )


def test_memory_that_grew_more_fails_and_says_by_how_much() -> None:
    result = SwitchResult(200 * MIB, [221 * MIB])
    assert result.growth > MAX_GROWTH
    assert result.line().endswith("(max 221.0, +10.5%): FAILED (more than 10%)")
