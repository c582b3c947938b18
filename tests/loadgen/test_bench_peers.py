"""scripts/bench_peers.py on recorded data: wrk parsing and the comparison table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

DATA = Path(__file__).parent / "data"

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:38501/models/diabetes/predict
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.10ms    2.01ms  40.11ms   90.00%
  Latency Distribution
     50%    6.33ms
     75%    7.01ms
     90%    8.50ms
     99%  120.19ms
  19401 requests in 10.00s, 3.52MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   1940.10
Transfer/sec:    360.00KB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors(peers: ModuleType) -> None:
    r = peers.parse_wrk(WRK_OUTPUT)
    assert r["rps"] == 1940.10
    assert r["requests"] == 19401
    assert (r["p50_ms"], r["p99_ms"]) == (6.33, 120.19)
    assert (r["non2xx"], r["socket_errors"]) == (5, 3)


def test_parse_wrk_converts_microseconds_and_seconds(peers: ModuleType) -> None:
    out = WRK_OUTPUT.replace("6.33ms", "633.00us").replace("120.19ms", "1.20s")
    r = peers.parse_wrk(out)
    assert r["p50_ms"] == 0.633
    assert r["p99_ms"] == 1200.0
    assert math.isnan(peers.parse_wrk("no output")["p50_ms"])


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
