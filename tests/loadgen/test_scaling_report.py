"""bench/scaling_report.py, and bench.scaling's render command, on recorded data: the table,
the verdict, the Markdown and plots."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import bench.scaling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_ideal_line_is_the_one_replica_throughput_times_the_replica_count(
    scaling: ModuleType, recorded: dict[str, Any]
) -> None:
    rows = scaling.table_rows(recorded)
    one = rows[0]["rps"]
    assert [r["ideal_rps"] for r in rows] == pytest.approx([one, 2 * one, 3 * one, 4 * one])
    for r in rows:
        assert r["efficiency"] == pytest.approx(r["rps"] / r["ideal_rps"])
        assert r["speedup"] == pytest.approx(r["rps"] / one)
    assert rows[0]["efficiency"] == pytest.approx(1)


def test_rows_are_sorted_by_replicas_whatever_the_run_order(
    scaling: ModuleType, recorded: dict[str, Any]
) -> None:
    shuffled = copy.deepcopy(recorded)
    shuffled["runs"].reverse()
    assert scaling.table_rows(shuffled) == scaling.table_rows(recorded)


def test_traffic_share_and_cpu_per_replica_come_from_the_replica_list(
    scaling: ModuleType, recorded: dict[str, Any]
) -> None:
    rows = scaling.table_rows(recorded)
    for row, run in zip(rows, recorded["runs"], strict=True):
        shares = [r["share"] for r in run["per_replica"]]
        assert (row["share_min"], row["share_max"]) == (min(shares), max(shares))
        cpus = [r["cpu_cores"] for r in run["per_replica"]]
        assert row["replicas_cpu_total"] == pytest.approx(sum(cpus))
        assert row["replica_cpu"] <= row["replica_cpu_limit"] * 1.05


def _rows(rps: list[float]) -> list[dict[str, Any]]:
    return [
        {"replicas": i + 1, "rps": v, "efficiency": v / ((i + 1) * rps[0])}
        for i, v in enumerate(rps)
    ]


def test_scaling_stop_is_none_while_throughput_stays_near_linear(scaling: ModuleType) -> None:
    assert scaling.scaling_stop(_rows([100, 195, 290, 380])) is None


def test_scaling_stop_is_the_first_count_clearly_below_linear(scaling: ModuleType) -> None:
    stop = scaling.scaling_stop(_rows([100, 190, 200, 205]))
    assert stop is not None
    assert (stop["replicas"], stop["after"]) == (3, 2)
    assert stop["growth"] == pytest.approx(200 / 190)


def test_scaling_stop_when_throughput_no_longer_grows(scaling: ModuleType) -> None:
    # 4 replicas are still 80 % efficient overall, but added under 5 %: that is the stop.
    stop = scaling.scaling_stop(_rows([100, 200, 330, 340]))
    assert stop is not None and stop["replicas"] == 4


BASE_ROW = {
    "replicas": 3,
    "replica_cpu": 0.1,
    "replica_cpu_limit": 0.25,
    "replicas_cpu_total": 0.3,
    "lb_cpu": 0.1,
    "loadgen_cpu": 0.3,
    "host_busy_cores": 0.8,
    "background_busy_cores": 0.0,
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"loadgen_cpu": 0.95}, "load generator"),
        ({"host_busy_cores": 1.9}, "machine"),
        ({"replica_cpu": 0.24}, "replica CPU limit"),
        ({}, "concurrency"),
    ],
)
def test_bottleneck_names_the_saturated_resource(
    scaling: ModuleType, changes: dict[str, float], expected: str
) -> None:
    what, why = scaling.bottleneck({**BASE_ROW, **changes}, cores=2)
    assert what == expected
    assert why.endswith(("pace", "use", "replicas", "next)"))


def test_machine_bottleneck_mentions_other_work_on_the_machine(scaling: ModuleType) -> None:
    row = {**BASE_ROW, "host_busy_cores": 1.9, "background_busy_cores": 0.7}
    _, why = scaling.bottleneck(row, cores=2)
    assert "0.70 cores were busy with other work" in why
    assert "1.90 of its 2 cores" in why


def test_conclusions_state_range_stop_and_machine_arithmetic(
    scaling: ModuleType, recorded: dict[str, Any]
) -> None:
    rows = scaling.table_rows(recorded)
    text = "\n".join(scaling.conclusions(recorded, rows))
    assert f"From 1 to 4 replicas, throughput went from {rows[0]['rps']:.0f}" in text
    # The recorded run lost throughput from 3 to 4 replicas (522 -> 385 req/s, efficiency 48%).
    stop = scaling.scaling_stop(rows)
    assert stop is not None and (stop["after"], stop["replicas"]) == (3, 4)
    assert "Scaling stops at 4 replicas: going from 3 to 4 added -26% throughput" in text
    assert "Scaling stayed within" not in text
    assert f"{recorded['machine']['cores']} cores" in text
    assert "failed" in text


def test_render_writes_markdown_and_png_plots(
    scaling: ModuleType, recorded: dict[str, Any], tmp_path: Path
) -> None:
    md = scaling.render(recorded, tmp_path)
    text = md.read_text()
    assert f"**{recorded['machine']['cores']} CPU cores**" in text
    assert f"capped to **{recorded['settings']['model_cpus']} cores**" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(recorded["runs"])  # header + one row per replica count
    assert "## Where scaling stops, and why" in text
    for name in ("throughput.png", "latency.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000
        assert f"]({name})" in text


def test_render_command_rerenders_from_a_results_file(
    scaling: ModuleType, recorded: dict[str, Any], tmp_path: Path
) -> None:
    results = tmp_path / "run" / "results.json"
    results.parent.mkdir()
    results.write_text(__import__("json").dumps(recorded))
    assert bench.scaling.main(["render", str(results)]) == 0
    # The command writes beside the results file exactly what render() writes.
    expected = scaling.render(recorded, tmp_path / "direct")
    assert (results.parent / "README.md").read_text() == expected.read_text()
    for name in ("throughput.png", "latency.png"):
        assert (results.parent / name).read_bytes().startswith(PNG_MAGIC)


def test_missing_measurements_render_as_not_available(
    scaling: ModuleType, recorded: dict[str, Any], tmp_path: Path
) -> None:
    partial = copy.deepcopy(recorded)
    for run in partial["runs"]:
        run["containers_cpu"] = {}
        run["server"] = {"p50_ms": None, "p99_ms": None}
        for r in run["per_replica"]:
            r["cpu_cores"] = None
    text = scaling.render(partial, tmp_path).read_text()
    assert "n/a" in text
