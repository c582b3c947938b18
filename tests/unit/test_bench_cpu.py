"""bench.cpu: CPU time from /proc and from cgroups, read here from fixture files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import cpu


def stat_line(pid: int, comm: str, utime: int, stime: int, cutime: int, cstime: int) -> str:
    """A /proc/<pid>/stat line: pid (comm) state, then fields 4-13, then the four times."""
    return f"{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0\n"  # noqa: E501


def proc_tree(root: Path, pid: int, own: tuple[int, int, int, int], kids: dict[int, int]) -> None:
    """A fake /proc: ``pid`` with its four times and children whose utime is given."""
    task = root / str(pid) / "task" / str(pid)
    task.mkdir(parents=True)
    (task / "children").write_text(" ".join(str(k) for k in kids) + " \n")
    # A command with a space and a parenthesis: the parser must count from the last ")".
    (root / str(pid) / "stat").write_text(stat_line(pid, "gunicorn: master (x)", *own))
    for kid, utime in kids.items():
        (root / str(kid)).mkdir()
        (root / str(kid) / "stat").write_text(stat_line(kid, "gunicorn", utime, 0, 999, 999))


def test_a_tree_is_its_own_time_its_reaped_childrens_and_its_living_childrens_own(
    tmp_path: Path,
) -> None:
    proc_tree(tmp_path, 10, (100, 50, 30, 20), {11: 300, 12: 400})
    # 100 + 50 + 30 + 20 of the master; 300 and 400 of the workers, without their cutime/cstime.
    assert cpu.process_seconds(10, proc=tmp_path, tick=100) == pytest.approx(9.0)


def test_a_child_that_exits_between_the_listing_and_its_stat_is_skipped(tmp_path: Path) -> None:
    proc_tree(tmp_path, 10, (100, 0, 0, 0), {11: 300})
    (tmp_path / "11" / "stat").unlink()
    assert cpu.process_seconds(10, proc=tmp_path, tick=100) == pytest.approx(1.0)


def test_a_process_that_is_gone_or_unknown_has_no_cpu_time(tmp_path: Path) -> None:
    assert cpu.process_seconds(10, proc=tmp_path) is None
    assert cpu.process_seconds(None) is None


def test_this_process_has_used_some_cpu_time_according_to_the_real_proc() -> None:
    seconds = cpu.process_seconds(os.getpid())
    assert seconds is not None and seconds > 0


def test_the_machine_is_busy_for_everything_but_idle_and_iowait(tmp_path: Path) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    (tmp_path / "stat").write_text("cpu  10 20 30 400 50 6 7 8 90 90\ncpu0 1 2 3 4 5 6 7 8 9 9\n")
    busy, total = cpu.host_jiffies(tmp_path)
    assert total == 10 + 20 + 30 + 400 + 50 + 6 + 7 + 8  # guest time is inside user already
    assert busy == total - 400 - 50


def test_busy_cores_is_the_busy_share_of_the_interval_times_the_cores() -> None:
    assert cpu.busy_cores((100, 1000), (400, 2000), cores=4) == 1.2
    assert cpu.busy_cores((100, 1000), (100, 1000), cores=4) == 0.0


def test_cgroup_v2_time_is_usage_usec_of_cpu_stat(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 1\n")
    assert cpu.cgroup_seconds(tmp_path) == 2.5


def test_cgroup_v1_time_is_cpuacct_usage_in_nanoseconds(tmp_path: Path) -> None:
    (tmp_path / "cpuacct.usage").write_text("1500000000\n")
    assert cpu.cgroup_seconds(tmp_path) == 1.5


def test_a_directory_without_cpu_accounting_has_no_time(tmp_path: Path) -> None:
    assert cpu.cgroup_seconds(tmp_path) is None
    (tmp_path / "cpuacct.usage").write_text("garbage\n")
    assert cpu.cgroup_seconds(tmp_path) is None


@pytest.mark.parametrize(
    ("where", "file", "text", "seconds"),
    [
        ("system.slice/docker-{id}.scope", "cpu.stat", "usage_usec 7000000\n", 7.0),
        ("docker/{id}", "cpu.stat", "usage_usec 3000000\n", 3.0),
        ("cpuacct/docker/{id}", "cpuacct.usage", "4000000000\n", 4.0),
        ("cpu,cpuacct/docker/{id}", "cpuacct.usage", "5000000000\n", 5.0),
    ],
    ids=["v2-systemd", "v2-cgroupfs", "v1-cgroupfs", "v1-joint-controllers"],
)
def test_a_containers_cgroup_is_found_for_either_driver_and_version(
    tmp_path: Path, where: str, file: str, text: str, seconds: float
) -> None:
    directory = tmp_path / where.format(id="abc123")
    directory.mkdir(parents=True)
    (directory / file).write_text(text)
    assert cpu.container_seconds("abc123", root=tmp_path) == seconds
    assert cpu.container_seconds("other", root=tmp_path) is None
