"""CPU per request of each part of the stack, read around each load-balancer run of make bench.

Each container's CPU comes from its cgroup (the engine's stats API when the cgroup is not
visible); the Docker daemon's share, which no container's cgroup holds, comes from /proc:
dockerd with its direct children (containerd, and docker-proxy behind each published port, which
relays every request), plus the containerd shims. The load generator (wrk, a child of the bench)
is measured apart from the stack through the bench's reaped-children rusage. What the stack
costs is compared with one replica pinned to one core, measured by the same run on the host
(issue #13: the stack's total at most 1.3x that, the load balancer's at most 15%). Each run also
reads the replicas' memory: the largest RSS of any replica (its cgroup's anonymous memory, each
shared page counted once), against issue #13's 200 MiB with the default workers. The working
set (what `docker stats` shows) is no measure of it: it also holds the page cache of the files
the workers read, which grows with every worker a rollout or recycling starts.
"""

from __future__ import annotations

import resource
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import cpu, docker

#: The Docker daemon's processes (dockerd's children included), and the shims.
DAEMON = "docker daemon"
SHIMS = "containerd shims"
#: The load generator, never counted in the stack.
LOADGEN = "load generator (wrk)"
#: Components that are not the stack's own containers, in the order of the table.
OUTSIDE = (DAEMON, SHIMS)
#: Targets of issue #13, as ratios to one pinned replica's CPU per request.
TARGET_STACK_RATIO = 1.3
TARGET_LB_SHARE = 0.15
#: Target of issue #13 for one replica's memory (RSS, MiB).
TARGET_REPLICA_MIB = 200
#: The service whose containers are the replicas.
REPLICA_SERVICE = "model"

Snapshot = dict[str, float]


def pids_named(prefix: str, proc: Path = cpu.PROC) -> list[int]:
    """Processes whose command name starts with ``prefix``."""
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith(prefix):
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return pids


def process_seconds_named(prefix: str, proc: Path = cpu.PROC) -> float:
    """CPU time (s) of every process named ``prefix``..., each with its children."""
    return sum(cpu.process_seconds(pid, proc) or 0.0 for pid in pids_named(prefix, proc))


def loadgen_seconds() -> float:
    """CPU time (s) of the bench's reaped children: wrk's, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class StackCpu:
    """Snapshots of the CPU time of a Compose project's services and of the Docker daemon."""

    def __init__(self, project: str, engine: docker.DockerEngine | None = None) -> None:
        self.project = project
        self.engine = engine or docker.DockerEngine()

    def snapshot(self) -> Snapshot:
        """CPU seconds so far: per service (replicas summed), the daemon, the shims, and the
        load generator."""
        out: dict[str, float] = defaultdict(float)
        for cid, service in self.engine.containers(self.project).items():
            out[service] += self.engine.cpu_seconds(cid) or 0.0
        out[DAEMON] = process_seconds_named("dockerd")
        out[SHIMS] = process_seconds_named("containerd-shim")
        out[LOADGEN] = loadgen_seconds()
        return dict(out)

    def replica_mib(self) -> float | None:
        """The largest RSS of any replica now, in MiB (None: none could be read)."""
        sizes = [
            self.engine.anonymous_bytes(cid)
            for cid, service in self.engine.containers(self.project).items()
            if service == REPLICA_SERVICE
        ]
        known = [size for size in sizes if size is not None]
        return round(max(known) / 2**20, 1) if known else None


def us_per_request(before: Snapshot, after: Snapshot, requests: int) -> dict[str, float]:
    """Each component's CPU per request (µs) between two snapshots; components seen in only
    one of them (a container that came or went) are left out."""
    if requests <= 0:
        return {}
    return {
        name: round((after[name] - before[name]) / requests * 1e6, 1)
        for name in after
        if name in before
    }


def median_by_component(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median over runs of each component's µs per request."""
    names = {name for run in runs for name in run}
    return {
        name: round(statistics.median(run[name] for run in runs if name in run), 1)
        for name in sorted(names)
    }


def stack_total(by_component: dict[str, float]) -> float:
    """The stack's CPU per request: everything but the load generator."""
    return round(sum(v for k, v in by_component.items() if k != LOADGEN), 1)


def summary(
    by_component: dict[str, float], pinned_us: float | None, replica_mib: float | None = None
) -> dict[str, Any]:
    """The report's figures for one scenario: components, total, ratios, the replicas'
    largest RSS, and the targets."""
    total = stack_total(by_component)
    out: dict[str, Any] = {"us_per_request": by_component, "stack_us_per_request": total}
    if replica_mib is not None:
        out |= {
            "replica_mib": replica_mib,
            "replica_mib_met": replica_mib <= TARGET_REPLICA_MIB,
        }
    if pinned_us:
        ratio = total / pinned_us
        lb_share = by_component.get("lb", 0.0) / pinned_us
        out |= {
            "pinned_replica_us_per_request": round(pinned_us, 1),
            "stack_ratio": round(ratio, 2),
            "stack_ratio_met": ratio <= TARGET_STACK_RATIO,
            "lb_share": round(lb_share, 3),
            "lb_share_met": lb_share <= TARGET_LB_SHARE,
        }
    return out


def table(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """The component table: one column per scenario, µs of CPU per request."""
    if not summaries:
        return []
    names = list(summaries)
    components = sorted(
        {c for s in summaries.values() for c in s["us_per_request"]} - {*OUTSIDE, LOADGEN}
    )
    width = max(14, *(len(n) for n in names))
    lines = [
        "",
        "Whole stack: CPU per request (us) through the load balancer, by component",
        f"  {'component':34s}" + "".join(f" {n:>{width}s}" for n in names),
    ]

    def row(label: str, value: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"  {label:34s}" + "".join(f" {value(summaries[n]):>{width}s}" for n in names))

    def us(component: str) -> Callable[[dict[str, Any]], str]:
        return lambda s: _num(s["us_per_request"].get(component))

    for component in [*components, *OUTSIDE]:
        row(component, us(component))
    row("stack total", lambda s: _num(s["stack_us_per_request"]))
    row("one replica pinned to one core", lambda s: _num(s.get("pinned_replica_us_per_request")))
    row(
        f"stack / pinned (target <= {TARGET_STACK_RATIO:g})",
        lambda s: _verdict(s.get("stack_ratio"), s.get("stack_ratio_met"), "x"),
    )
    row(
        f"lb / pinned (target <= {TARGET_LB_SHARE:.0%})",
        lambda s: _verdict(s.get("lb_share"), s.get("lb_share_met"), "%"),
    )
    row(f"{LOADGEN}, apart", us(LOADGEN))
    row(
        f"replica RSS, MiB (target <= {TARGET_REPLICA_MIB})",
        lambda s: _verdict(s.get("replica_mib"), s.get("replica_mib_met"), "MiB"),
    )
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _verdict(value: float | None, met: bool | None, unit: str) -> str:
    if value is None:
        return "-"
    shown = {"%": f"{value:.0%}", "x": f"{value:.2f}x"}.get(unit, f"{value:.0f}")
    return f"{shown} {'PASS' if met else 'MISS'}"
