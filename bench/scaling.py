"""`make scaling-report`: the same bounded load against 1, 2, 3 and 4 replicas, measured.

    python -m bench.scaling run               start an own compose project, measure, render,
                                              tear down
    python -m bench.scaling render RESULTS    re-render the Markdown and PNGs from a results.json

`run` starts the stack as compose project SCALING_PROJECT (default modelfleet-scaling) on its
own ports, so a user's `make up` stack is never touched, with every replica capped to
SCALING_MODEL_CPUS cores (0.25) and SCALING_WORKERS gunicorn workers (1): on a small machine
the replicas must be smaller than the machine, or scaling cannot show. For each replica count
in SCALING_REPLICAS ("1 2 3 4") it waits until the load balancer reaches exactly that many
replicas, then runs `make load` (the Locust scenario, SCALING_USERS users for SCALING_SECONDS
seconds, no think time: a closed-loop capacity measurement) and collects:

- from Locust (client side, through the load balancer): requests/s, p50/p95/p99, failures;
- from Prometheus: requests per replica (traffic share), server-side p50/p99, and each
  replica's CPU (`modelfleet_container_cpu_seconds_total`, read from its own cgroup);
- from the Docker engine: CPU of the load balancer and the load generator containers;
- from the host's /proc/stat: how busy the whole machine was.

It writes SCALING_OUT (reports/scaling/): results.json (the recorded data), README.md (the
summary), throughput.png and latency.png, and raw/ with each run's Locust reports. The analysis
and rendering are in bench/scaling_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import ROOT, BenchError, cpu, docker, models
from bench.compose import Project
from bench.docker import CpuSampler, DockerEngine
from bench.prom import Prometheus
from bench.scaling_report import conclusions, fmt, render, table_rows

REPORTS = ROOT / "reports"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    """What `run` measures and where; every field from a SCALING_* variable."""

    replicas: tuple[int, ...] = tuple(int(n) for n in _env("SCALING_REPLICAS", "1 2 3 4").split())
    model_cpus: str = _env("SCALING_MODEL_CPUS", "0.25")
    workers: str = _env("SCALING_WORKERS", "1")
    users: int = int(_env("SCALING_USERS", "20"))
    seconds: int = int(_env("SCALING_SECONDS", "20"))
    project: str = _env("SCALING_PROJECT", "modelfleet-scaling")
    lb_port: str = _env("SCALING_LB_PORT", "38180")
    prometheus_port: str = _env("SCALING_PROMETHEUS_PORT", "39190")
    out: Path = Path(_env("SCALING_OUT", str(REPORTS / "scaling")))
    keep: bool = _env("SCALING_KEEP_STACK", "0") == "1"

    def compose_settings(self, replicas: int) -> dict[str, str]:
        return {
            "COMPOSE_PROJECT_NAME": self.project,
            "LB_PORT": self.lb_port,
            "PROMETHEUS_PORT": self.prometheus_port,
            "LOCUST_PORT": str(int(self.lb_port) + 9),
            "REPLICAS": str(replicas),
            "MODEL_CPUS": self.model_cpus,
            "MODELFLEET_WORKERS": self.workers,
            # Finer scrapes: a 20 s run holds ten samples per series instead of four.
            "PROMETHEUS_SCRAPE_INTERVAL": "2s",
            "PROMETHEUS_SCRAPE_TIMEOUT": "2s",
            "PROMETHEUS_EVALUATION_INTERVAL": "2s",
        }

    def project_for(self, replicas: int) -> Project:
        return Project(self.compose_settings(replicas))

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"


# ---- measurement: the compose project, Prometheus, the Docker engine, /proc -------------------


def machine() -> dict[str, Any]:  # pragma: no cover - make scaling-report
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0.0
    with contextlib.suppress(OSError):
        mem_kib = float(Path("/proc/meminfo").read_text().split()[1])
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count() or 1,
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "docker": docker.server_version(),
        "kernel": platform.release(),
    }


def wait_for_replicas(
    settings: Settings, n: int, prom: Prometheus, timeout: float = 120
) -> None:  # pragma: no cover - make scaling-report
    """Until nginx answers from exactly n replicas and Prometheus scrapes n replicas."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    targets = None
    path = models.plumber_path(settings.lb_url)
    with requests.Session() as s:
        while time.monotonic() < deadline:
            seen = set()
            for _ in range(10 * n):
                with contextlib.suppress(requests.RequestException):
                    r = s.get(settings.lb_url + path, timeout=5)
                    if r.status_code == 200:
                        seen.add(r.headers.get("X-Served-By", "?"))
            targets = prom.scalar('count(up{job="model"} == 1)', time.time())
            if len(seen) == n and targets == n:
                return
            time.sleep(1)
    raise BenchError(f"wanted {n} replicas, nginx reached {seen}, Prometheus {targets}")


def per_replica(prom: Prometheus, window: str, end: float) -> list[dict[str, Any]]:
    """Requests, traffic share and CPU of each replica over the run's window."""
    sel = 'job="model", endpoint!="health"'
    join = '* on (instance) group_left (replica) modelfleet_replica_info{job="model"}'
    requests_by = prom.by_label(
        f"sum by (replica) (sum by (instance) (increase(modelfleet_requests_total{{{sel}}}"
        f"[{window}])) {join})",
        "replica",
        end,
    )
    cpu_by = prom.by_label(
        "sum by (replica) (sum by (instance) (rate(modelfleet_container_cpu_seconds_total"
        f'{{job="model"}}[{window}])) {join})',
        "replica",
        end,
    )
    total = sum(requests_by.values()) or 1.0
    return [
        {
            "replica": replica,
            "requests": round(count),
            "share": round(count / total, 4),
            "cpu_cores": round(cpu_by[replica], 3) if replica in cpu_by else None,
        }
        for replica, count in sorted(requests_by.items())
    ]


def server_latency(prom: Prometheus, window: str, end: float) -> dict[str, float | None]:
    """Server-side p50 and p99 (ms) from the replicas' request duration histogram."""
    sel = 'job="model", endpoint!="health"'
    out: dict[str, float | None] = {}
    for q in (0.5, 0.99):
        v = prom.scalar(
            f"histogram_quantile({q}, sum by (le) "
            f"(increase(modelfleet_request_duration_seconds_bucket{{{sel}}}[{window}])))",
            end,
        )
        out[f"p{round(q * 100)}_ms"] = None if v is None else round(v * 1000, 1)
    return out


def measure(
    settings: Settings, n: int, prom: Prometheus, engine: DockerEngine
) -> dict:  # pragma: no cover - make scaling-report
    """One bounded `make load` against n replicas, and what Prometheus and Docker saw."""
    raw = settings.out / "raw" / f"replicas-{n}"
    load_out = raw.relative_to(REPORTS)
    sampler = CpuSampler(engine, settings.project)
    # What the machine was doing anyway (other stacks, other users), with this stack idle.
    idle0 = cpu.host_jiffies()
    time.sleep(3)
    idle1 = cpu.host_jiffies()
    busy0 = cpu.host_jiffies()
    sampler.start()
    proc = subprocess.run(
        [
            "make", "-s", "--no-print-directory", "load", f"LOAD_OUT={load_out}",
            f"LOAD_USERS={settings.users}", f"LOAD_SPAWN_RATE={settings.users}",
            f"LOAD_SECONDS={settings.seconds}", "LOAD_WAIT_MIN=0", "LOAD_WAIT_MAX=0",
        ],
        cwd=ROOT,
        # Speed thresholds are what this report measures, not a pass/fail here.
        env={**os.environ, **settings.compose_settings(n), "LOADGEN_MAX_P99_MS": "0"},
        check=False,
    )  # fmt: skip
    sampler.stop()
    busy1 = cpu.host_jiffies()
    summary = json.loads((raw / "summary.json").read_text())
    start, end = summary["started"], summary["ended"]
    window = f"{max(int(end - start), 5)}s"
    time.sleep(4)  # one more scrape holds the end of the run
    cores = sampler.cores_by_service()
    return {
        "replicas": n,
        "exit_code": proc.returncode,
        "client": {
            k: summary["total"][k]
            for k in ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")
        },
        "errors": summary["errors"],
        "server": server_latency(prom, window, end),
        "per_replica": per_replica(prom, window, end),
        "containers_cpu": {k: cores[k] for k in ("lb", "loadgen", "prometheus") if k in cores},
        "host": {
            "busy_cores": cpu.busy_cores(busy0, busy1),
            "background_busy_cores": cpu.busy_cores(idle0, idle1),
        },
        "window": [start, end],
    }


def run(settings: Settings) -> Path:  # pragma: no cover - make scaling-report
    settings.out.mkdir(parents=True, exist_ok=True)
    if not settings.out.resolve().is_relative_to(REPORTS.resolve()):
        raise BenchError(f"SCALING_OUT must be under {REPORTS}")
    prom = Prometheus(f"http://127.0.0.1:{settings.prometheus_port}")
    engine = DockerEngine()
    first = settings.replicas[0]
    print(
        f"scaling: project {settings.project}, replicas {settings.replicas}, "
        f"{settings.model_cpus} cores and {settings.workers} worker(s) each",
        flush=True,
    )
    settings.project_for(first).down()
    results: dict[str, Any] = {
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {
            "model_cpus": settings.model_cpus,
            "workers": settings.workers,
            "users": settings.users,
            "seconds": settings.seconds,
            "replicas": list(settings.replicas),
        },
        "runs": [],
    }
    try:
        for n in settings.replicas:
            print(f"\n==== {n} replica(s) ====", flush=True)
            settings.project_for(n).up()
            wait_for_replicas(settings, n, prom)
            results["runs"].append(measure(settings, n, prom, engine))
            (settings.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not settings.keep:
            settings.project_for(first).down()
    md = render(results, settings.out)
    rows = table_rows(results)
    print("\nreplicas  req/s  ideal  eff.   p99 ms  CPU/replica  machine busy")
    for r in rows:
        print(
            f"{r['replicas']:8d} {r['rps']:6.0f} {r['ideal_rps']:6.0f} {r['efficiency']:5.0%}"
            f" {r['p99_ms']:7.0f} {fmt(r['replica_cpu'], '11.2f')} {r['host_busy_cores']:8.2f}"
        )
    for c in conclusions(results, rows):
        print(f"- {c}")
    print(f"\nreport: {md.relative_to(ROOT)}")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="measure (own compose project), then render")
    p = sub.add_parser("render", help="render README.md and PNGs from a results.json")
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, help="default: the results file's directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(Settings())
        else:
            results = json.loads(args.results.read_text())
            print(render(results, args.out or args.results.parent))
    except BenchError as exc:
        raise SystemExit(f"scaling: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
