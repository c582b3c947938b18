"""bench.components: the stack's CPU per request by component, and its ratio to one pinned
replica's (issue #13), from snapshots and fixture /proc trees; the replicas' memory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench import components, run
from bench.components import DAEMON, LOADGEN, SHIMS
from tests.unit.test_bench_cpu import proc_tree


def test_processes_are_found_by_command_name_with_their_children(tmp_path: Path) -> None:
    proc_tree(tmp_path, 10, (100, 0, 0, 0), {11: 200})  # a "gunicorn: master (x)"
    (tmp_path / "10" / "comm").write_text("dockerd\n")
    (tmp_path / "11" / "comm").write_text("containerd\n")
    (tmp_path / "self").mkdir()  # not a pid
    assert components.pids_named("dockerd", tmp_path) == [10]
    tick = os.sysconf("SC_CLK_TCK")
    # dockerd's own time and its living child's (containerd, docker-proxy).
    assert components.process_seconds_named("dockerd", tmp_path) == pytest.approx(300 / tick)
    assert components.process_seconds_named("containerd-shim", tmp_path) == 0


def test_cpu_per_request_is_the_difference_of_two_snapshots_over_the_requests() -> None:
    before = {"lb": 1.0, "model": 2.0, DAEMON: 5.0, "gone": 1.0}
    after = {"lb": 1.2, "model": 2.6, DAEMON: 5.1, "new": 3.0}
    assert components.us_per_request(before, after, 1000) == {
        "lb": 200.0,
        "model": 600.0,
        DAEMON: 100.0,
    }
    assert components.us_per_request(before, after, 0) == {}


def test_medians_are_taken_per_component_over_the_rounds() -> None:
    runs = [{"lb": 100.0, "model": 300.0}, {"lb": 120.0, "model": 500.0}, {"lb": 90.0}]
    assert components.median_by_component(runs) == {"lb": 100.0, "model": 400.0}


def test_the_load_generator_is_shown_but_never_counted_in_the_stack() -> None:
    by = {"lb": 60.0, "model": 300.0, "prometheus": 5.0, DAEMON: 30.0, SHIMS: 5.0, LOADGEN: 90.0}
    s = components.summary(by, pinned_us=300.0)
    assert s["stack_us_per_request"] == 400.0
    assert s["stack_ratio"] == pytest.approx(1.33)
    assert s["stack_ratio_met"] is False
    assert s["lb_share"] == pytest.approx(0.2)
    assert s["lb_share_met"] is False
    met = components.summary({"lb": 30.0, "model": 300.0, LOADGEN: 500.0}, pinned_us=300.0)
    assert met["stack_ratio_met"] and met["lb_share_met"]


def test_without_a_pinned_figure_there_is_no_ratio() -> None:
    s = components.summary({"lb": 60.0}, pinned_us=None)
    assert "stack_ratio" not in s and s["stack_us_per_request"] == 60.0


def test_the_table_has_a_column_per_scenario_and_a_row_per_component() -> None:
    by = {"lb": 60.0, "model": 300.0, DAEMON: 30.0, SHIMS: 5.0, LOADGEN: 90.0}
    lines = components.table({"single row": components.summary(by, 300.0)})
    text = "\n".join(lines)
    rows = {line.split("  ")[1].strip(): line for line in lines if line.startswith("  ")}
    assert rows["lb"].split()[-1] == "60"
    assert rows["stack total"].split()[-1] == "395"
    assert rows["one replica pinned to one core"].split()[-1] == "300"
    assert "1.32x MISS" in rows["stack / pinned (target <= 1.3)"]
    assert "20% MISS" in rows["lb / pinned (target <= 15%)"]
    assert rows[f"{LOADGEN}, apart"].split()[-1] == "90"
    assert text.index("model") < text.index(DAEMON) < text.index("stack total")
    assert components.table({}) == []


def test_the_bench_compares_each_load_balancer_scenario_with_the_pinned_replica() -> None:
    results = [
        {"where": "host", "app": "server", "scenario": "single", "cpu_us_per_request": 300.0},
        {"where": "host", "app": "constant", "scenario": "single", "cpu_us_per_request": 100.0},
        {
            "where": "lb",
            "app": "server",
            "scenario": "single",
            "cpu_us_by_component": {"lb": 60.0, "model": 330.0},
            "replica_mib": 190.0,
        },
        {"where": "lb", "app": "server", "scenario": "batch", "cpu_us_by_component": None},
    ]
    report = run.stack_cpu_report(results)
    assert list(report) == ["single"]
    assert report["single"]["pinned_replica_us_per_request"] == 300.0
    assert report["single"]["stack_ratio"] == pytest.approx(1.3)
    assert report["single"]["replica_mib_met"] is True


def test_the_load_generator_is_read_from_the_reaped_children() -> None:
    before = components.loadgen_seconds()
    subprocess.run(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"], check=True)
    assert components.loadgen_seconds() > before


class _Engine:
    """Stands in for the Docker engine: two replicas, the load balancer, one unreadable."""

    def containers(self, project: str) -> dict[str, str]:
        return {"r1": "model", "r2": "model", "r3": "model", "lb1": "lb"}

    def anonymous_bytes(self, container: str) -> float | None:
        mib = {"r1": 180.0, "r2": 195.5, "r3": None, "lb1": 900.0}[container]
        return None if mib is None else mib * 2**20


def test_replica_memory_is_the_largest_rss_of_any_replica() -> None:
    stack = components.StackCpu("p", engine=_Engine())  # type: ignore[arg-type]
    assert stack.replica_mib() == 195.5


def test_replica_memory_is_judged_against_200_mib_and_shown_in_the_table() -> None:
    s = components.summary({"lb": 60.0}, pinned_us=300.0, replica_mib=212.4)
    assert (s["replica_mib"], s["replica_mib_met"]) == (212.4, False)
    assert components.summary({"lb": 60.0}, 300.0, replica_mib=200.0)["replica_mib_met"]
    assert "replica_mib" not in components.summary({"lb": 60.0}, 300.0)
    lines = components.table({"single row": s})
    row = next(line for line in lines if "replica RSS" in line)
    assert "(target <= 200)" in row and row.split()[-2:] == ["212", "MISS"]
