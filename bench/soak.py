"""``make soak``: steady traffic at half the fleet's measured capacity for a long time, with
worker recycling, and the replicas' memory over it (issue #11).

First the capacity: :class:`bench.traffic.Load` unpaced for CAPACITY_SECONDS. Then the same
traffic paced at SOAK_FRACTION of it for SOAK_SECONDS, while every replica's anonymous memory
(what its processes hold, without page cache: :meth:`bench.docker.DockerEngine.anonymous_bytes`)
is sampled. Promise: 0 failed requests, and no
replica's memory more than 10% above what it was at the end of the warm-up (SOAK_WARMUP
seconds). Workers recycle after MODELFLEET_MAX_REQUESTS (with jitter) requests; the soak counts
how often gunicorn did so, from the replicas' logs. The stack tests run a short one.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from bench.docker import DockerEngine
from bench.faults import FaultResult, from_load
from bench.fleet import Stack, running_stack
from bench.traffic import Load

#: Memory growth after the warm-up that a soak allows (issue #11: 10%).
MAX_GROWTH = 0.10
#: gunicorn's log line when a worker reached its max_requests.
RECYCLED = "Autorestarting worker"


@dataclass
class MemorySeries:
    """Anonymous-memory samples (seconds since the start, MiB) per replica container."""

    samples: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))

    def growth(self, warmup: float, window: float) -> dict[str, float]:
        """Per replica: the median of the last ``window`` seconds over the median of the
        ``window`` seconds after the warm-up, less one (0.05: 5% more)."""
        out = {}
        for cid, points in self.samples.items():
            if not points:
                continue
            end = points[-1][0]
            base = [m for t, m in points if warmup <= t < warmup + window]
            last = [m for t, m in points if t > end - window]
            if base and last:
                out[cid] = statistics.median(last) / statistics.median(base) - 1
        return out


def sample_memory(
    engine: DockerEngine, ids: list[str], series: MemorySeries, stop: threading.Event, every: float
) -> None:  # pragma: no cover - needs Docker; the soak stack test runs it
    """Sample each container's anonymous memory every ``every`` seconds until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        for cid in ids:
            mem = engine.anonymous_bytes(cid)
            if mem is not None:
                series.samples[cid].append((time.monotonic() - started, mem / 2**20))
        stop.wait(every)


def soak(
    stack: Stack,
    seconds: float = 600,
    warmup: float = 60,
    fraction: float = 0.5,
    threads: int = 4,
    capacity_seconds: float = 10,
    every: float = 5,
    until_requests: int = 0,
) -> FaultResult:  # pragma: no cover - needs Docker; the soak stack test runs it
    """Measure the capacity, then soak at ``fraction`` of it for ``seconds``, and on until
    ``until_requests`` were sent (within 3x ``seconds``)."""
    with Load(
        stack.lb_url, threads=threads, max_requests=1_000_000, max_seconds=capacity_seconds
    ) as probe:
        time.sleep(capacity_seconds)
    capacity = probe.result.ok / capacity_seconds
    rate = max(1.0, fraction * capacity)
    ids = stack.container_ids()
    soak_started = time.time()
    series = MemorySeries()
    stop = threading.Event()
    sampler = threading.Thread(
        target=sample_memory, args=(DockerEngine(), ids, series, stop, every), daemon=True
    )
    sampler.start()
    # At least `until_requests`, if that takes longer than `seconds` (up to 3x as long).
    limit = 3 * seconds if until_requests else seconds
    with Load(
        stack.lb_url, threads=threads, max_requests=10_000_000, max_seconds=limit, rate=rate
    ) as load:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < limit and not (
            elapsed >= seconds and load.result.total >= until_requests
        ):
            time.sleep(0.5)
    stop.set()
    sampler.join(timeout=30)
    recycled = stack.log_count(RECYCLED, soak_started)
    window = min(60.0, max(every * 3, (seconds - warmup) / 4))
    growth = series.growth(warmup, window)
    worst = max(growth.values(), default=math.nan)
    problems = []
    if not growth:
        problems.append("no memory samples")
    elif worst > MAX_GROWTH:
        problems.append(
            f"replica memory grew {worst:.1%} after the warm-up (at most {MAX_GROWTH:.0%})"
        )
    mib = {cid[:12]: round(points[-1][1]) for cid, points in series.samples.items() if points}
    return from_load(
        f"soak {time.monotonic() - started:.0f} s at {fraction:.0%} capacity",
        load.result,
        None,
        problems=problems,
        note=f"{rate:.0f} req/s of {capacity:.0f}; {recycled} workers recycled; memory growth "
        f"max {worst:+.1%} (MiB now {mib})",
        details={"capacity": capacity, "rate": rate, "recycled": recycled, "growth": growth},
    )


def main() -> int:  # pragma: no cover - needs a running stack
    from bench.chaos import table

    stack = running_stack()
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    warmup = float(os.environ.get("SOAK_WARMUP", "60"))
    fraction = float(os.environ.get("SOAK_FRACTION", "0.5"))
    print(
        f"soak: project {stack.project}, {len(stack.container_ids())} replicas, {seconds:.0f} s "
        f"at {fraction:.0%} of the capacity measured first",
        flush=True,
    )
    result = soak(stack, seconds=seconds, warmup=warmup, fraction=fraction)
    print(table([result]))
    return 0 if result.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
