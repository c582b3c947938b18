"""``make chaos``: the fault matrix (bench/faults.py) against the running stack, one table.

Run from the repository root on the stack `make up` started (or the project
COMPOSE_PROJECT_NAME names): ``python -m bench.chaos``. CHAOS_FAULTS picks faults by name
(comma-separated, default all, in the order of :data:`FAULTS`). Each fault restores the replica
count it found. The table goes to stdout and reports/chaos.json; the exit status is 1 when a
fault broke its promise (more failed requests than it allows, or a problem such as a restart).
Latencies are printed, never asserted.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import ROOT, faults
from bench.faults import FaultResult
from bench.fleet import Stack, running_stack

FAULT_NAMES = (
    "kill",
    "sigterm",
    "hung-worker",
    "dns",
    "capacity",
    "overload",
    "slow-headers",
    "stalled-body",
    "scale-to-zero",
    "large-bodies",
)
#: The overload row's offered load, in multiples of the fleet's admission (issue #11: 5x).
OVERLOAD_FACTOR = 5


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def table(results: list[FaultResult]) -> str:
    """The table ``make chaos`` prints: one line per fault, then its verdict."""
    head = (
        f"{'fault':34s} {'sent':>7s} {'ok':>7s} {'refused':>8s} {'failed':>6s} "
        f"{'p99 ms':>7s} {'max ms':>7s} {'recover s':>9s}  note"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        recover = "-" if r.recover_s is None else f"{r.recover_s:.1f}"
        lines.append(
            f"{r.fault:34s} {r.sent:7d} {r.ok:7d} {r.refused:8d} {r.failed:6d} "
            f"{_ms(r.p99_s):>7s} {_ms(r.max_s):>7s} {recover:>9s}  {r.note}"
        )
    lines.append("")
    for r in results:
        allowed = f"at most {r.allowed_failures}" if r.allowed_failures else "0"
        verdict = "PASS" if r.passed else "FAIL"
        why = "; ".join([*r.problems, *([f"failures {r.failures}"] if r.failed else [])])
        lines.append(f"  {verdict}  {r.fault}: failed {r.failed} (allowed {allowed}) {why}")
    return "\n".join(lines)


def selected(spec: str) -> list[str]:
    """The fault names CHAOS_FAULTS picks (comma-separated; empty: all), in matrix order."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FAULT_NAMES))
    if unknown:
        raise SystemExit(f"CHAOS_FAULTS: unknown fault(s) {unknown}; known: {list(FAULT_NAMES)}")
    return [n for n in FAULT_NAMES if not names or n in names]


def main() -> int:  # pragma: no cover - needs a running stack; the stack tests run the faults
    runs: dict[str, Callable[[Stack], FaultResult]] = {
        "kill": lambda s: faults.signal_replica(s, signal.SIGKILL),
        "sigterm": lambda s: faults.signal_replica(s, signal.SIGTERM),
        "hung-worker": faults.hung_worker,
        "dns": faults.dns_failure,
        "capacity": lambda s: faults.overload_fault(s, 1),
        "overload": lambda s: faults.overload_fault(s, OVERLOAD_FACTOR),
        "slow-headers": faults.slow_headers,
        "stalled-body": faults.stalled_body,
        "scale-to-zero": faults.scale_to_zero,
        "large-bodies": faults.large_bodies,
    }
    names = selected(os.environ.get("CHAOS_FAULTS", ""))
    stack = running_stack()
    replicas = len(stack.container_ids())
    print(f"chaos: project {stack.project}, {replicas} replicas, {stack.lb_url}", flush=True)
    results = []
    for name in names:
        started = time.monotonic()
        print(f"  {name} ...", flush=True)
        result = runs[name](stack)
        stack.wait_for_replicas(replicas, timeout=120)
        print(
            f"  {name}: {'ok' if result.passed else 'FAILED'} ({time.monotonic() - started:.0f} s)"
        )
        results.append(result)
    print()
    print(table(results))
    out = Path(os.environ.get("CHAOS_REPORT", ROOT / "reports" / "chaos.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str) + "\n")
    print(f"\nreport: {out}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
