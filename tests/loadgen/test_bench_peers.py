"""bench/peers.py on recorded data: one round's figures, the medians, the comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from bench import wrk

DATA = Path(__file__).parent / "data"

RAW = {
    "requests": 19401,
    "duration_us": 10_000_000,
    "bytes": 3_690_000,
    "connect_errors": 0,
    "read_errors": 2,
    "write_errors": 0,
    "status_errors": 5,
    "timeouts": 1,
    "latency_mean_us": 7100.0,
    "latency_p50_us": 6330,
    "latency_p90_us": 8500,
    "latency_p99_us": 120190,
    "latency_max_us": 40110,
}


def test_a_round_records_rate_percentiles_and_both_kinds_of_error(peers: ModuleType) -> None:
    r = peers.round_figures(wrk.WrkResult(RAW))
    assert r["rps"] == 1940.1
    assert r["requests"] == 19401
    assert (r["p50_ms"], r["p99_ms"]) == (6.33, 120.19)
    assert (r["non2xx"], r["socket_errors"]) == (5, 3)
    assert r["valid"] is False


def test_a_round_without_errors_is_valid_and_one_without_requests_is_not(
    peers: ModuleType,
) -> None:
    clean = {**RAW, "read_errors": 0, "status_errors": 0, "timeouts": 0}
    assert peers.round_figures(wrk.WrkResult(clean))["valid"] is True
    idle = {**clean, "requests": 0}
    assert peers.round_figures(wrk.WrkResult(idle))["valid"] is False


def test_median_ignores_invalid_rounds_and_flags_them(peers: ModuleType) -> None:
    t = peers.Target("x", "http://127.0.0.1:1", "/", {}, "x")
    t.rounds = [
        {"rps": 100.0, "p50_ms": 1.0, "p99_ms": 9.0, "valid": True},
        {"rps": 300.0, "p50_ms": 3.0, "p99_ms": 7.0, "valid": True},
        {"rps": 900.0, "p50_ms": 0.1, "p99_ms": 0.2, "valid": False},
    ]
    m = peers.median_of(t)
    assert (m["rps"], m["p50_ms"], m["p99_ms"]) == (200.0, 2.0, 8.0)
    assert m["valid"] is False


def test_render_states_ratios_to_one_modelfleet_replica_and_the_goals(peers: ModuleType) -> None:
    results = json.loads((DATA / "peers_results.json").read_text())
    md = peers.render(results)
    rows = {r["name"]: r for r in results["targets"]}
    base = rows["modelfleet-1"]["rps"]
    for name in ("bentoml", "mlflow"):
        assert f"{base / rows[name]['rps']:.2f}x" in md
    assert "| modelfleet-1 |" in md and "1.00x" in md
    assert ">= 4x bentoml" in md and ">= 6x mlflow" in md
    assert f"{results['cores']}-core machine" in md


def test_render_names_the_features_the_results_were_measured_with(peers: ModuleType) -> None:
    results = json.loads((DATA / "peers_results.json").read_text())
    assert "features" not in results  # recorded before results.json carried them
    assert "One JSON row per request (`diabetes`)." in peers.render(results)
    results["features"] = ["a", "b"]
    assert "One JSON row per request (`diabetes`: a, b)." in peers.render(results)
