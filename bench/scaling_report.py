"""``make scaling-report``'s analysis and rendering: pure functions of a recorded results.json.

:mod:`bench.scaling` measures and writes results.json; this module turns it into the table, the
verdict (where scaling stops, and why), the Markdown summary and the PNG plots.

    python -m bench.scaling render RESULTS    re-render the Markdown and PNGs from a results.json
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

# Efficiency (measured / ideal linear throughput) below which scaling is said to stop.
EFFICIENCY_FLOOR = 0.8
# A resource counts as saturated at this fraction of its capacity.
SATURATED = 0.85


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


def fmt(value: float | None, spec: str) -> str:
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
            f"| {r['efficiency']:.0%} | {fmt(r['p50_ms'], '.0f')} | {fmt(r['p95_ms'], '.0f')} "
            f"| {fmt(r['p99_ms'], '.0f')} | {fmt(r['server_p99_ms'], '.0f')} "
            f"| {r['failures']} of {r['requests']} "
            f"| {fmt(r['share_min'], '.0%')} to {fmt(r['share_max'], '.0%')} "
            f"| {fmt(r['replica_cpu'], '.2f')} of {r['replica_cpu_limit']:g} "
            f"| {fmt(r['lb_cpu'], '.2f')} | {fmt(r['loadgen_cpu'], '.2f')} "
            f"| {r['host_busy_cores']:.2f} of {m['cores']} "
            f"| {fmt(r['background_busy_cores'], '.2f')} |"
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
