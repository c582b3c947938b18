#!/usr/bin/env python3
"""`make scaling-report`: the same bounded load against 1, 2, 3 and 4 replicas, measured.

    scaling_report.py run               start an own compose project, measure, render, tear down
    scaling_report.py render RESULTS    re-render the Markdown and PNGs from a results.json

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
summary), throughput.png and latency.png, and raw/ with each run's Locust reports.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
PLUMBER_PATH = "/predict_data?pregnant=1&glucose=3&pressure=1"

# Efficiency (measured / ideal linear throughput) below which scaling is said to stop.
EFFICIENCY_FLOOR = 0.8
# A resource counts as saturated at this fraction of its capacity.
SATURATED = 0.85


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

    def compose_env(self, replicas: int) -> dict[str, str]:
        return {
            **os.environ,
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


# ---- analysis: pure functions of the recorded results (unit-tested) --------------------------


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per replica count: throughput, ideal, efficiency, latency, CPU, traffic share."""
    runs = sorted(results["runs"], key=lambda r: r["replicas"])
    base = next((r for r in runs if r["replicas"] == 1), runs[0])
    per_replica_base = base["client"]["rps"] / base["replicas"]
    rows = []
    for run in runs:
        n = run["replicas"]
        ideal = per_replica_base * n
        shares = [r["share"] for r in run["per_replica"]]
        cpu = [r["cpu_cores"] for r in run["per_replica"] if r.get("cpu_cores") is not None]
        rows.append(
            {
                "replicas": n,
                "rps": run["client"]["rps"],
                "ideal_rps": ideal,
                "speedup": run["client"]["rps"] / base["client"]["rps"],
                "efficiency": run["client"]["rps"] / ideal if ideal else float("nan"),
                "p50_ms": run["client"]["p50_ms"],
                "p95_ms": run["client"]["p95_ms"],
                "p99_ms": run["client"]["p99_ms"],
                "server_p99_ms": run["server"].get("p99_ms"),
                "requests": run["client"]["requests"],
                "failures": run["client"]["failures"],
                "share_min": min(shares) if shares else float("nan"),
                "share_max": max(shares) if shares else float("nan"),
                "replica_cpu": sum(cpu) / len(cpu) if cpu else None,
                "replica_cpu_limit": float(results["settings"]["model_cpus"]),
                "replicas_cpu_total": sum(cpu) if cpu else None,
                "lb_cpu": run["containers_cpu"].get("lb"),
                "loadgen_cpu": run["containers_cpu"].get("loadgen"),
                "host_busy_cores": run["host"]["busy_cores"],
                "background_busy_cores": run["host"].get("background_busy_cores"),
            }
        )
    return rows


def bottleneck(row: dict[str, Any], cores: int) -> tuple[str, str]:
    """(short name, sentence) of what limited the throughput of one run."""
    gen = row.get("loadgen_cpu")
    busy = row["host_busy_cores"]
    cpu, limit = row.get("replica_cpu"), row["replica_cpu_limit"]
    if gen is not None and gen >= SATURATED:
        return "load generator", (
            f"the load generator used {gen:.2f} cores; one Locust process cannot use more "
            "than one core, so it, not the stack, set the pace"
        )
    if busy >= SATURATED * cores:
        parts = []
        if row.get("replicas_cpu_total") is not None:
            parts.append(f"replicas {row['replicas_cpu_total']:.2f}")
        if gen is not None:
            parts.append(f"load generator {gen:.2f}")
        if row.get("lb_cpu") is not None:
            parts.append(f"nginx {row['lb_cpu']:.2f}")
        background = row.get("background_busy_cores") or 0.0
        other = (
            f"; {background:.2f} cores were busy with other work before the run started"
            if background >= 0.2
            else ""
        )
        return "machine", (
            f"the machine was busy on {busy:.2f} of its {cores} cores ("
            + ", ".join(parts)
            + f"{other}): there was no idle core left for another replica to use"
        )
    if cpu is not None and cpu >= SATURATED * limit:
        return "replica CPU limit", (
            f"every replica ran at its CPU limit ({cpu:.2f} of {limit:g} cores): each replica is "
            "CPU-bound, so throughput grows with the number of replicas"
        )
    return "concurrency", (
        f"neither the replicas ({cpu if cpu is not None else float('nan'):.2f} of {limit:g} "
        f"cores each) nor the machine ({busy:.2f} of {cores} cores) were saturated: the "
        "closed-loop users waited on latency (more users, or the load balancer, would be next)"
    )


def scaling_stop(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first replica count whose throughput falls clearly short of linear, else None."""
    for prev, row in itertools.pairwise(rows):
        grew = row["rps"] / prev["rps"] if prev["rps"] else 0.0
        if row["efficiency"] < EFFICIENCY_FLOOR or grew < 1.05:
            return {"replicas": row["replicas"], "after": prev["replicas"], "growth": grew}
    return None


def conclusions(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Honest sentences: how far scaling went, where it stopped, and why."""
    cores = results["machine"]["cores"]
    limit = float(results["settings"]["model_cpus"])
    out = []
    last = rows[-1]
    out.append(
        f"From 1 to {last['replicas']} replicas, throughput went from {rows[0]['rps']:.0f} to "
        f"{last['rps']:.0f} requests/s ({last['speedup']:.2f}x; linear would be "
        f"{last['replicas'] / rows[0]['replicas']:.0f}x, efficiency {last['efficiency']:.0%})."
    )
    stop = scaling_stop(rows)
    if stop is None:
        what, why = bottleneck(last, cores)
        out.append(
            f"Scaling stayed within {EFFICIENCY_FLOOR:.0%} of linear up to {last['replicas']} "
            f"replicas. At {last['replicas']} replicas the limit was the {what}: {why}."
        )
    else:
        row = next(r for r in rows if r["replicas"] == stop["replicas"])
        what, why = bottleneck(row, cores)
        out.append(
            f"Scaling stops at {stop['replicas']} replicas: going from {stop['after']} to "
            f"{stop['replicas']} added {stop['growth'] - 1:.0%} throughput (efficiency "
            f"{row['efficiency']:.0%}). The limit there was the {what}: {why}."
        )
    budget = cores - (last.get("loadgen_cpu") or 0) - (last.get("lb_cpu") or 0)
    out.append(
        f"Arithmetic of this machine: {cores} cores, minus what the load generator and nginx "
        f"used at {last['replicas']} replicas, leaves about {max(budget, 0):.2f} cores for "
        f"replicas of {limit:g} cores each, i.e. at most {max(int(budget // limit), 0)} "
        "CPU-bound replicas before adding one only shares the same cores. On a bigger machine "
        "(or with the load generator on another host) the same stack keeps scaling."
    )
    worst = max(rows, key=lambda r: r["share_max"] - r["share_min"])
    if worst["replicas"] > 1:
        out.append(
            f"Traffic was spread evenly by nginx: at {worst['replicas']} replicas each replica "
            f"took between {worst['share_min']:.0%} and {worst['share_max']:.0%} of requests "
            f"(even would be {1 / worst['replicas']:.0%})."
        )
    failures = sum(r["failures"] for r in rows)
    out.append(
        "No request failed in any run."
        if failures == 0
        else f"{failures} requests failed across the runs: see raw/*/summary.json."
    )
    return out


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return format(value, spec)


def render_markdown(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The summary a person reads: machine, settings, table, conclusions, plots."""
    m, s = results["machine"], results["settings"]
    lines = [
        "# ModelFleet scaling report",
        "",
        f"Measured {results['created']} on {m['hostname']}: **{m['cores']} CPU cores** "
        f"({m['cpu_model']}), {m['memory_gib']:.0f} GiB memory, Docker {m['docker']}.",
        "",
        f"Each replica is capped to **{s['model_cpus']} cores** with {s['workers']} gunicorn "
        f"worker(s). Load: the Locust scenario of `make load` (services/loadgen/locustfile.py),"
        f" {s['users']} users, no think time, {s['seconds']} s per replica count, through nginx. "
        "The load generator, nginx and Prometheus run on the same machine as the replicas.",
        "",
        "## Results",
        "",
        "| replicas | req/s | ideal req/s | speed-up | efficiency | p50 ms | p95 ms | p99 ms "
        "| server p99 ms | failed | traffic share per replica | CPU per replica (cores) "
        "| nginx CPU | loadgen CPU | machine busy (cores) | busy before the run |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['replicas']} | {r['rps']:.0f} | {r['ideal_rps']:.0f} | {r['speedup']:.2f}x "
            f"| {r['efficiency']:.0%} | {_fmt(r['p50_ms'], '.0f')} | {_fmt(r['p95_ms'], '.0f')} "
            f"| {_fmt(r['p99_ms'], '.0f')} | {_fmt(r['server_p99_ms'], '.0f')} "
            f"| {r['failures']} of {r['requests']} "
            f"| {_fmt(r['share_min'], '.0%')} to {_fmt(r['share_max'], '.0%')} "
            f"| {_fmt(r['replica_cpu'], '.2f')} of {r['replica_cpu_limit']:g} "
            f"| {_fmt(r['lb_cpu'], '.2f')} | {_fmt(r['loadgen_cpu'], '.2f')} "
            f"| {r['host_busy_cores']:.2f} of {m['cores']} "
            f"| {_fmt(r['background_busy_cores'], '.2f')} |"
        )
    lines += [
        "",
        "Ideal = the 1-replica throughput times the replica count. p50/p95/p99 are measured by "
        "Locust at the client, through nginx; the server p99 comes from the replicas' "
        "`modelfleet_request_duration_seconds` histogram (bucket-interpolated). Replica CPU is "
        "`rate(modelfleet_container_cpu_seconds_total)` from Prometheus; nginx and loadgen CPU "
        "come from the Docker engine; the machine figures from /proc/stat: busy cores during the "
        "run, and during 3 s just before it with this stack idle (other work on the machine, "
        "which competes with the replicas for the same cores).",
        "",
        "## Where scaling stops, and why",
        "",
        *[f"- {c}" for c in conclusions(results, rows)],
        "",
        "## Plots",
        "",
        "![throughput against replicas](throughput.png)",
        "",
        "![latency against replicas](latency.png)",
        "",
        "Raw data: `results.json`; each run's Locust reports (HTML, CSV, summary) under `raw/`.",
        "",
    ]
    return "\n".join(lines)


def render_plots(rows: list[dict[str, Any]], cores: int, out: Path) -> list[Path]:
    """throughput.png (measured vs ideal linear) and latency.png (p50/p99 vs replicas)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["replicas"] for r in rows]
    paths = []

    def save(fig: Any, ax: Any, ylabel: str, title: str, name: str) -> Path:
        """Label the figure's axes (replicas on x, from zero on y), write it, close it."""
        ax.set_xlabel("replicas")
        ax.set_ylabel(ylabel)
        ax.set_xticks(n)
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        return out / name

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    ax.plot(n, [r["ideal_rps"] for r in rows], "--", color="grey", label="ideal (linear)")
    ax.plot(n, [r["rps"] for r in rows], "o-", color="tab:blue", label="measured")
    for r in rows:
        ax.annotate(f"{r['efficiency']:.0%}", (r["replicas"], r["rps"]), textcoords="offset "
                    "points", xytext=(0, -14), ha="center", fontsize=8)  # fmt: skip
    title = f"Throughput against replicas ({cores}-core machine)"
    paths.append(save(fig, ax, "requests/s", title, "throughput.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    ax.plot(n, [r["p99_ms"] for r in rows], "o-", color="tab:red", label="p99 (client)")
    ax.plot(n, [r["p50_ms"] for r in rows], "o-", color="tab:green", label="p50 (client)")
    server = [r["server_p99_ms"] for r in rows]
    if all(v is not None for v in server):
        ax.plot(n, server, "s:", color="tab:orange", label="p99 (server)")
    title = "Latency against replicas (same closed-loop load)"
    paths.append(save(fig, ax, "latency (ms)", title, "latency.png"))
    return paths


def render(results: dict[str, Any], out: Path) -> Path:
    """Write README.md and the PNG plots for recorded results; return the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results)
    render_plots(rows, results["machine"]["cores"], out)
    md = out / "README.md"
    md.write_text(render_markdown(results, rows), encoding="utf-8")
    return md


# ---- measurement: the compose project, Prometheus, the Docker engine, /proc -------------------


def compose(settings: Settings, replicas: int, *args: str, capture: bool = False) -> str:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "compose"), *args],
        cwd=ROOT,
        env=settings.compose_env(replicas),
        capture_output=capture,
        text=True,
        check=True,
        timeout=600,
    )
    return proc.stdout if capture else ""


class Prometheus:
    def __init__(self, port: str) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1/query"

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        r = requests.get(self.url, params={"query": expr, "time": f"{at:.3f}"}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def scalar(self, expr: str, at: float) -> float | None:
        result = self.query(expr, at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


class DockerEngine:
    """CPU time of containers, from the engine's stats API (cumulative, any cgroup version)."""

    def __init__(self, path: str = "/var/run/docker.sock") -> None:
        self.path = path

    def _get(self, url: str) -> Any:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.settimeout(10)
        conn.sock.connect(self.path)
        try:
            conn.request("GET", url)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def containers(self, project: str) -> dict[str, str]:
        """Running container id -> compose service, for one project."""
        label = quote(json.dumps({"label": [f"com.docker.compose.project={project}"]}))
        return {
            c["Id"]: c["Labels"].get("com.docker.compose.service", "?")
            for c in self._get(f"/containers/json?filters={label}")
        }

    def cpu_seconds(self, container: str) -> float | None:
        try:
            stats = self._get(f"/containers/{container}/stats?stream=false&one-shot=true")
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        except (OSError, KeyError, ValueError, TypeError):
            return None

    def memory_bytes(self, container: str) -> float | None:
        """Working set: memory usage less reclaimable page cache (what `docker stats` shows)."""
        try:
            mem = self._get(f"/containers/{container}/stats?stream=false&one-shot=true")[
                "memory_stats"
            ]
            stats = mem.get("stats", {})
            cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
            return float(mem["usage"] - cache)
        except (OSError, KeyError, ValueError, TypeError):
            return None


class CpuSampler(threading.Thread):
    """Samples containers' CPU time every `interval` s; cores = delta CPU / delta time.

    One stats call takes about a second on Docker 20.10 (the engine waits for a second
    sample), so the containers are sampled in parallel, and only the services asked for.
    """

    def __init__(
        self,
        engine: DockerEngine,
        project: str,
        services: tuple[str, ...] = ("lb", "loadgen", "prometheus"),
        interval: float = 2.0,
    ) -> None:
        super().__init__(daemon=True)
        self.engine, self.project, self.interval = engine, project, interval
        self.services = services
        self.first: dict[str, tuple[float, float]] = {}
        self.last: dict[str, tuple[float, float]] = {}
        self.service: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def _sample(self, cid: str, service: str) -> None:
        cpu = self.engine.cpu_seconds(cid)
        if cpu is None:
            return
        now = time.monotonic()
        with self.lock:
            self.service[cid] = service
            self.first.setdefault(cid, (now, cpu))
            self.last[cid] = (now, cpu)

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError, ValueError):
                threads = [
                    threading.Thread(target=self._sample, args=(cid, service), daemon=True)
                    for cid, service in self.engine.containers(self.project).items()
                    if service in self.services
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=10)
            self.stop_event.wait(self.interval)

    def cores_by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for cid, (t0, c0) in self.first.items():
            t1, c1 = self.last[cid]
            if t1 - t0 >= self.interval:
                out[self.service[cid]] = out.get(self.service[cid], 0.0) + (c1 - c0) / (t1 - t0)
        return {k: round(v, 3) for k, v in out.items()}


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Average number of busy cores between two host_cpu() readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(busy / total * (os.cpu_count() or 1), 3) if total else 0.0


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0.0
    with contextlib.suppress(OSError):
        mem_kib = float(Path("/proc/meminfo").read_text().split()[1])
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count() or 1,
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "docker": docker or "unknown",
        "kernel": platform.release(),
    }


def wait_for_replicas(settings: Settings, n: int, prom: Prometheus, timeout: float = 120) -> None:
    """Until nginx answers from exactly n replicas and Prometheus scrapes n replicas."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    targets = None
    lb = f"http://127.0.0.1:{settings.lb_port}"
    with requests.Session() as s:
        while time.monotonic() < deadline:
            seen = set()
            for _ in range(10 * n):
                with contextlib.suppress(requests.RequestException):
                    r = s.get(lb + PLUMBER_PATH, timeout=5)
                    if r.status_code == 200:
                        seen.add(r.headers.get("X-Served-By", "?"))
            targets = prom.scalar('count(up{job="model"} == 1)', time.time())
            if len(seen) == n and targets == n:
                return
            time.sleep(1)
    raise SystemExit(f"scaling: wanted {n} replicas, nginx reached {seen}, Prometheus {targets}")


def measure(settings: Settings, n: int, prom: Prometheus, engine: DockerEngine) -> dict:
    """One bounded `make load` against n replicas, and what Prometheus and Docker saw."""
    raw = settings.out / "raw" / f"replicas-{n}"
    load_out = raw.relative_to(REPORTS)
    sampler = CpuSampler(engine, settings.project)
    # What the machine was doing anyway (other stacks, other users), with this stack idle.
    idle0 = host_cpu()
    time.sleep(3)
    idle1 = host_cpu()
    busy0, total0 = host_cpu()
    sampler.start()
    proc = subprocess.run(
        [
            "make", "-s", "--no-print-directory", "load", f"LOAD_OUT={load_out}",
            f"LOAD_USERS={settings.users}", f"LOAD_SPAWN_RATE={settings.users}",
            f"LOAD_SECONDS={settings.seconds}", "LOAD_WAIT_MIN=0", "LOAD_WAIT_MAX=0",
        ],
        cwd=ROOT,
        # Speed thresholds are what this report measures, not a pass/fail here.
        env={**settings.compose_env(n), "LOADGEN_MAX_P99_MS": "0"},
        check=False,
    )  # fmt: skip
    sampler.stop_event.set()
    sampler.join()
    busy1, total1 = host_cpu()
    summary = json.loads((raw / "summary.json").read_text())
    start, end = summary["started"], summary["ended"]
    window = f"{max(int(end - start), 5)}s"
    time.sleep(4)  # one more scrape holds the end of the run
    sel = 'job="model", endpoint!="health"'
    join = '* on (instance) group_left (replica) modelfleet_replica_info{job="model"}'
    requests_by = prom.query(
        f"sum by (replica) (sum by (instance) (increase(modelfleet_requests_total{{{sel}}}"
        f"[{window}])) {join})",
        end,
    )
    cpu_by = {
        r["metric"]["replica"]: float(r["value"][1])
        for r in prom.query(
            "sum by (replica) (sum by (instance) (rate(modelfleet_container_cpu_seconds_total"
            f'{{job="model"}}[{window}])) {join})',
            end,
        )
    }
    total = sum(float(r["value"][1]) for r in requests_by) or 1.0
    per_replica = [
        {
            "replica": r["metric"]["replica"],
            "requests": round(float(r["value"][1])),
            "share": round(float(r["value"][1]) / total, 4),
            "cpu_cores": round(cpu_by[r["metric"]["replica"]], 3)
            if r["metric"]["replica"] in cpu_by
            else None,
        }
        for r in sorted(requests_by, key=lambda r: r["metric"]["replica"])
    ]
    server = {}
    for q in (0.5, 0.99):
        v = prom.scalar(
            f"histogram_quantile({q}, sum by (le) "
            f"(increase(modelfleet_request_duration_seconds_bucket{{{sel}}}[{window}])))",
            end,
        )
        server[f"p{round(q * 100)}_ms"] = None if v is None else round(v * 1000, 1)
    cores = sampler.cores_by_service()
    return {
        "replicas": n,
        "exit_code": proc.returncode,
        "client": {
            k: summary["total"][k]
            for k in ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")
        },
        "errors": summary["errors"],
        "server": server,
        "per_replica": per_replica,
        "containers_cpu": {k: cores[k] for k in ("lb", "loadgen", "prometheus") if k in cores},
        "host": {
            "busy_cores": busy_cores((busy0, total0), (busy1, total1)),
            "background_busy_cores": busy_cores(idle0, idle1),
        },
        "window": [start, end],
    }


def run(settings: Settings) -> Path:
    settings.out.mkdir(parents=True, exist_ok=True)
    if not settings.out.resolve().is_relative_to(REPORTS.resolve()):
        raise SystemExit(f"scaling: SCALING_OUT must be under {REPORTS}")
    prom = Prometheus(settings.prometheus_port)
    engine = DockerEngine()
    first = settings.replicas[0]
    print(
        f"scaling: project {settings.project}, replicas {settings.replicas}, "
        f"{settings.model_cpus} cores and {settings.workers} worker(s) each",
        flush=True,
    )
    compose(settings, first, "--profile", "*", "down", "-v", "--remove-orphans")
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
            compose(settings, n, "up", "-d", "--wait", "--remove-orphans")
            wait_for_replicas(settings, n, prom)
            results["runs"].append(measure(settings, n, prom, engine))
            (settings.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not settings.keep:
            compose(settings, first, "--profile", "*", "down", "-v", "--remove-orphans")
    md = render(results, settings.out)
    rows = table_rows(results)
    print("\nreplicas  req/s  ideal  eff.   p99 ms  CPU/replica  machine busy")
    for r in rows:
        print(
            f"{r['replicas']:8d} {r['rps']:6.0f} {r['ideal_rps']:6.0f} {r['efficiency']:5.0%}"
            f" {r['p99_ms']:7.0f} {_fmt(r['replica_cpu'], '11.2f')} {r['host_busy_cores']:8.2f}"
        )
    for c in conclusions(results, rows):
        print(f"- {c}")
    print(f"\nreport: {md.relative_to(ROOT)}")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="measure (own compose project), then render")
    p = sub.add_parser("render", help="render README.md and PNGs from a results.json")
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, help="default: the results file's directory")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(Settings())
    else:
        results = json.loads(args.results.read_text())
        print(render(results, args.out or args.results.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Settings", "bottleneck", "conclusions", "render", "scaling_stop", "table_rows"]
