"""``make switches``: one replica switched between two versions of a model many times, and its
memory after (issue #12: within 10% of where it started; 20 switches in `make test`, 100 here).

A switch replaces the replica's worker processes (scripts/rollout_fleet.py, ``Fleet.switch``),
so nothing a version loaded may stay behind. Anonymous memory (heap, without page cache:
:meth:`bench.docker.DockerEngine.anonymous_bytes`) is read after the first switch and after
every other one. The model's current version is restored at the end and the replica switched
back to it. Settings: SWITCH_MODEL (the default model, ``diabetes``), SWITCH_VERSIONS (two
versions of it, comma-separated: e.g. ``1.0.0,1.1.0``; required), SWITCHES (100).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from model_server.repository import RepositoryError, load_index, set_current

from bench.docker import DockerEngine
from bench.fleet import Stack, running_stack, worker_pids
from scripts.rollout_fleet import Fleet, run_docker

#: Growth of a replica's memory the switches may cause (issue #12).
MAX_GROWTH = 0.10
#: How long the previous workers may take to exit after a switch before memory is read anyway.
SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class SwitchResult:
    """Anonymous memory (bytes) after the first switch and after each further one."""

    start: float
    after: list[float]

    @property
    def growth(self) -> float:
        """The last reading over the first, less one (0.05: 5% more)."""
        return self.after[-1] / self.start - 1

    def line(self) -> str:
        """One line for a person: the figures and the verdict."""
        mib = 2**20
        verdict = "OK" if self.growth <= MAX_GROWTH else f"FAILED (more than {MAX_GROWTH:.0%})"
        return (
            f"anonymous memory: {self.start / mib:.1f} MiB, after {len(self.after)} switches "
            f"{self.after[-1] / mib:.1f} MiB (max {max(self.after) / mib:.1f}, "
            f"{self.growth:+.1%}): {verdict}"
        )


def switch_memory(
    stack: Stack, name: str, versions: tuple[str, str], switches: int
) -> SwitchResult:  # pragma: no cover - needs Docker; the rollout stack test runs it
    """Switch the stack's first replica ``switches`` times between ``versions`` (after a first
    switch to ``versions[0]``), reading its memory; the model's current version is restored."""
    fleet = Fleet(run_docker, stack.project, 60)
    replica = fleet.replicas()[0]
    engine = DockerEngine()
    repo = Path(stack.repository)
    current = load_index(repo).models[name].current
    workers = len(worker_pids(stack, replica))

    def switch(version: str) -> float:
        set_current(repo, name, version)
        fleet.switch(replica, name, version)
        # The new workers serve; the previous ones may still be exiting, and a reading then
        # counts one of them too (about 30 MiB more): wait until only the new ones are left.
        deadline = time.monotonic() + SETTLE_SECONDS
        while len(worker_pids(stack, replica)) > workers and time.monotonic() < deadline:
            time.sleep(0.2)
        memory = engine.anonymous_bytes(replica)
        if memory is None:
            raise RuntimeError(f"no memory reading for replica {replica}")
        return memory

    try:
        start = switch(versions[0])
        after = [switch(versions[(i + 1) % 2]) for i in range(switches)]
    finally:
        set_current(repo, name, current)
        fleet.switch(replica, name, current)
    return SwitchResult(start, after)


def main() -> int:  # pragma: no cover - needs the running stack
    """`make switches`: exit status 1 when memory grew more than MAX_GROWTH."""
    name = os.environ.get("SWITCH_MODEL") or "diabetes"
    versions = tuple(v for v in (os.environ.get("SWITCH_VERSIONS") or "").split(",") if v)
    if len(versions) != 2:
        print("switches: SWITCH_VERSIONS must name two versions, e.g. 1.0.0,1.1.0", file=sys.stderr)
        return 2
    switches = int(os.environ.get("SWITCHES") or 100)
    try:
        result = switch_memory(running_stack(), name, (versions[0], versions[1]), switches)
    except RepositoryError as exc:
        print(f"switches: {exc}", file=sys.stderr)
        return 2
    print(result.line())
    return 0 if result.growth <= MAX_GROWTH else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
