"""Per-replica CPU and memory come from the container's own cgroup, v1 or v2."""

from __future__ import annotations

from pathlib import Path

from model_server.metrics import ContainerCollector


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _values(root: Path) -> dict[str, float]:
    return {m.name: m.samples[0].value for m in ContainerCollector(str(root)).collect()}


def test_cgroup_v1_cpu_memory_and_limits(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "cpuacct/cpuacct.usage": "2500000000\n",
            "memory/memory.usage_in_bytes": "1000000\n",
            "memory/memory.limit_in_bytes": "536870912\n",
            "memory/memory.stat": "cache 5\ntotal_inactive_file 200000\n",
            "cpu/cpu.cfs_quota_us": "50000\n",
            "cpu/cpu.cfs_period_us": "100000\n",
        },
    )
    assert _values(tmp_path) == {
        "modelfleet_container_cpu_seconds": 2.5,
        "modelfleet_container_memory_working_set_bytes": 800000,
        "modelfleet_container_memory_limit_bytes": 536870912,
        "modelfleet_container_cpu_limit_cores": 0.5,
    }


def test_cgroup_v1_without_limits_exports_no_limit_series(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "cpuacct/cpuacct.usage": "1000000000\n",
            "memory/memory.usage_in_bytes": "4096\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/memory.stat": "",
            "cpu/cpu.cfs_quota_us": "-1\n",
            "cpu/cpu.cfs_period_us": "100000\n",
        },
    )
    assert _values(tmp_path) == {
        "modelfleet_container_cpu_seconds": 1.0,
        "modelfleet_container_memory_working_set_bytes": 4096,
    }


def test_cgroup_v2_cpu_memory_and_limits(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "cgroup.controllers": "cpu memory\n",
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\n",
            "cpu.max": "100000 100000\n",
            "memory.current": "3000000\n",
            "memory.max": "max\n",
            "memory.stat": "anon 1\ninactive_file 1000000\n",
        },
    )
    assert _values(tmp_path) == {
        "modelfleet_container_cpu_seconds": 1.5,
        "modelfleet_container_memory_working_set_bytes": 2000000,
        "modelfleet_container_cpu_limit_cores": 1.0,
    }


def test_no_cgroup_files_means_no_series(tmp_path: Path) -> None:
    assert _values(tmp_path) == {}
