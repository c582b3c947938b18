"""CPU time: of a process tree and of the whole machine from ``/proc``, of a container from its
cgroup (v2 ``cpu.stat``, or v1 ``cpuacct.usage``).

Every reader takes its root directory as an argument, so the tests read fixture files.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")


def _stat_seconds(stat: str, children: bool, tick: float) -> float:
    """user + system time from one ``/proc/<pid>/stat`` line, with reaped children's if asked."""
    # The command (field 2) may hold spaces and parentheses: count from the last ")".
    # After it: state is field 3; utime, stime, cutime, cstime are fields 14-17.
    fields = stat.rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / tick


def process_seconds(pid: int | None, proc: Path = PROC, tick: float | None = None) -> float | None:
    """CPU time (user + system, s) of a process and its children, dead children included.

    The process's own time and what its reaped children used, plus its living children's own
    time: for a gunicorn master, every worker that ever ran. None when the process is gone.
    """
    if pid is None:
        return None
    tick = tick or os.sysconf("SC_CLK_TCK")
    try:
        kids = (proc / str(pid) / "task" / str(pid) / "children").read_text().split()
        total = _stat_seconds((proc / str(pid) / "stat").read_text(), True, tick)
    except OSError:
        return None
    for kid in kids:
        try:
            total += _stat_seconds((proc / kid / "stat").read_text(), False, tick)
        except OSError:
            continue  # exited in between: its time is in the parent's cutime once reaped
    return total


def host_jiffies(proc: Path = PROC) -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot, from ``/proc/stat``."""
    fields = [float(v) for v in (proc / "stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(
    before: tuple[float, float], after: tuple[float, float], cores: int | None = None
) -> float:
    """Average number of busy cores between two :func:`host_jiffies` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(busy / total * (cores or os.cpu_count() or 1), 3) if total else 0.0


def cgroup_seconds(directory: Path) -> float | None:
    """CPU time (s) used by a cgroup: v2 ``cpu.stat`` (usage_usec), else v1 ``cpuacct.usage``
    (ns); None when the directory has neither."""
    try:
        for line in (directory / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except OSError:
        pass
    try:
        return int((directory / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


def container_cgroups(container_id: str, root: Path = CGROUP) -> list[Path]:
    """Where Docker puts a container's cgroup, for either driver and either cgroup version."""
    return [
        root / "system.slice" / f"docker-{container_id}.scope",  # v2, systemd driver
        root / "docker" / container_id,  # v2, cgroupfs driver
        root / "cpuacct" / "docker" / container_id,  # v1, cgroupfs driver
        root / "cpu,cpuacct" / "docker" / container_id,
        root / "cpuacct" / "system.slice" / f"docker-{container_id}.scope",  # v1, systemd
        root / "cpu,cpuacct" / "system.slice" / f"docker-{container_id}.scope",
    ]


def container_seconds(container_id: str, root: Path = CGROUP) -> float | None:
    """CPU time (s) of a container from its cgroup on this host; None when it is not visible
    here (Docker Desktop, a remote engine, rootless): then ask the engine."""
    for directory in container_cgroups(container_id, root):
        seconds = cgroup_seconds(directory)
        if seconds is not None:
            return seconds
    return None
