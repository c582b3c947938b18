"""bench/soak.py's memory verdict (the soak itself needs a stack: the stack tests run a short
one)."""

from __future__ import annotations

import pytest

from bench.soak import MemorySeries


def series(points: dict[str, list[tuple[float, float]]]) -> MemorySeries:
    s = MemorySeries()
    s.samples.update(points)
    return s


def test_growth_compares_the_last_window_with_the_window_after_the_warm_up() -> None:
    # 0-10 s warm-up (ignored, lower), then 100 MiB, ending at 105 MiB.
    points = [(t, 50.0) for t in range(0, 10)] + [(t, 100.0) for t in range(10, 50)]
    points += [(t, 105.0) for t in range(50, 60)]
    growth = series({"a": points}).growth(warmup=10, window=10)
    assert growth == {"a": pytest.approx(0.05)}


def test_growth_is_per_replica_and_uses_medians() -> None:
    steady = [(float(t), 200.0) for t in range(60)]
    spiky = [(float(t), 200.0 if t % 7 else 400.0) for t in range(60)]
    growth = series({"a": steady, "b": spiky}).growth(warmup=10, window=20)
    assert growth == {"a": 0.0, "b": 0.0}


def test_a_replica_without_samples_in_a_window_has_no_figure() -> None:
    assert series({"a": [], "b": [(0.0, 10.0)]}).growth(warmup=10, window=5) == {}
