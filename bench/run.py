"""``make bench``: measured throughput and latency of the model server against two baselines.

Run as ``python -m bench.run`` from the repository root (``make bench`` does).

What runs (everything on 127.0.0.1, every run bounded in time):

1. **One replica, on the host.** Three gunicorn servers from the tool environment, each started
   with the model server's own ``services/model-server/gunicorn.conf.py`` and the same
   ``MODELFLEET_WORKERS``/``MODELFLEET_THREADS`` (gthread workers, BLAS pinned to one thread),
   on the same CPU set (``taskset``; wrk gets the other CPU when the host has two or more):

   * ``server``: the model server (``model_server.app:create_app()``, prometheus-client in
     multiprocess mode exactly as in the image);
   * ``constant``: ``bench/baselines/constant_app.py``, a Flask route answering a constant,
     precomputed ``{"Answer":["no"]}`` (the floor of Flask + gunicorn);
   * ``naive``: ``bench/baselines/naive_app.py``, the usual port of a plumber API (a pandas
     DataFrame per request, ``predict_proba`` on it, ``jsonify``).

   wrk (one thread, ``--connections`` keep-alive connections, ``bench/request.lua``) measures
   every (scenario, app) pair for ``--duration`` seconds, interleaved round by round
   (server, constant, naive, server, constant, naive, ...), and the median over ``--rounds``
   is reported, so slow drift of a shared machine hits every app alike. Every scenario is
   checked once before it is measured (status 200, the expected answer, the naive port and
   the server agreeing on the 10,000-row batches), and a run with any non-2xx answer or socket
   error is marked invalid rather than counted. The requests (``bench/scenarios.py``) take
   their features from the bundles' manifests.

2. **Through the load balancer.** The real Compose stack: ``--lb-url`` (e.g. a running
   ``make up`` stack on http://127.0.0.1:8080), else, when Docker is available, an own
   project ``modelfleet-bench`` (BENCH_PROJECT) on ``--lb-port`` (38080) with images tagged
   ``bench`` (BENCH_TAG; built from the working tree, so the user's ``dev`` images and stacks
   are never touched), started for the measurement and removed afterwards. ``--lb off`` skips
   it.

Targets (printed as PASS/MISS; a miss does not fail the run, speed is measured, not asserted):
single-row predictions at >= 0.85x the constant endpoint's requests/s and >= 3x the naive
port's; 10,000-row batches of the linear models (diabetes, boston) at >= 1,000,000 rows/s.

3. **A generic model** (``bench/generic.py``; ``--generic off`` skips it). The server serves a
   copy of ``--model-dir`` (written to a temporary directory under ``--work-dir``, build/,
   removed afterwards; the committed models/ is only read) plus ``parcels``, a scikit-learn
   Pipeline (ColumnTransformer: OneHotEncoder on a string column, StandardScaler on two
   numbers; LogisticRegression) fitted on a synthetic frame with a fixed seed and packaged with
   ``model_server.package.package``. Its one-row requests (a JSON record, the plumber query
   with the string in it) are measured on the server alone, interleaved with the rest: the
   naive port cannot serve it, so the comparison is with the server's own single-row diabetes
   requests (ratio of requests/s) and with the estimator's own ``predict`` + ``predict_proba``
   on a one-row DataFrame, timed in the bench process after the servers stopped (µs per call,
   and its share of the server's CPU and wall time per request).

Output: a table on stdout and ``--out`` (reports/bench.json) with every run's raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError, components, cpu, docker, generic, wrk
from bench.compose import Project
from bench.procs import Process, free_port, http_ok, stop_all, taskset
from bench.scenarios import Scenario, check_scenario, scenarios, select
from bench.table import TARGET_ROWS_PER_S, TARGET_VS_CONSTANT, TARGET_VS_NAIVE, checks, table

SERVER_DIR = ROOT / "services" / "model-server"
GUNICORN_CONF = SERVER_DIR / "gunicorn.conf.py"
BASELINES = ROOT / "bench" / "baselines"
#: The bench's own Compose project; BENCH_PROJECT, BENCH_TAG and BENCH_PROMETHEUS_PORT change it
#: (two benches on one machine, or one beside another session's bench images).
COMPOSE_ENV = {
    "COMPOSE_PROJECT_NAME": os.environ.get("BENCH_PROJECT") or "modelfleet-bench",
    "PROMETHEUS_PORT": os.environ.get("BENCH_PROMETHEUS_PORT") or "39090",
    "MODELFLEET_TAG": os.environ.get("BENCH_TAG") or "bench",
}
#: The apps of the host part: name -> (gunicorn target, directory it is imported from).
APPS = {
    "server": ("model_server.app:create_app()", SERVER_DIR),
    "constant": ("constant_app:app", BASELINES),
    "naive": ("naive_app:app", BASELINES),
}


# --------------------------------------------------------------------------------------------
# The apps


def app_process(name: str, args: argparse.Namespace, port: int, logs: Path, tmp: Path) -> Process:
    """One app under gunicorn with the model server's config, settings and CPU set."""
    target, pythonpath = APPS[name]
    multiproc = tmp / f"prometheus-{name}"
    multiproc.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SERVER_DIR), str(pythonpath)]),
        "MODELFLEET_MODEL_DIR": str(args.model_dir),
        "MODELFLEET_WORKERS": str(args.workers),
        "MODELFLEET_THREADS": str(args.threads),
        "MODELFLEET_REPLICA_ID": f"bench-{name}",
        # Probes on a port of their own, as served; each app its own (they run side by side).
        "MODELFLEET_PROBE_PORT": str(free_port()),
        "MODELFLEET_ACCESS_LOG": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "BENCH_DATA_DIR": str(ROOT / "data"),
    }
    cmd = [
        *taskset(args.server_cpus),
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(GUNICORN_CONF),
        "--bind",
        f"127.0.0.1:{port}",
        target,
    ]
    return Process(name, cmd, log=logs / f"{name}.log", cwd=ROOT, env=env)


@contextlib.contextmanager
def host_apps(args: argparse.Namespace, logs: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """The three apps started and ready: name -> (base URL, gunicorn master's pid)."""
    ports = {name: free_port() for name in APPS}
    procs = [app_process(n, args, ports[n], logs, args.tmp) for n in APPS]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 90
        for p in procs:
            ready = functools.partial(http_ok, f"http://127.0.0.1:{ports[p.name]}/readyz")
            p.wait_ready(ready, timeout=deadline - time.monotonic())
        yield {p.name: (f"http://127.0.0.1:{ports[p.name]}", p.pid or 0) for p in procs}
    finally:
        stop_all(procs)


# --------------------------------------------------------------------------------------------
# Measuring


def run_wrk(
    url: str,
    sc: Scenario,
    args: argparse.Namespace,
    duration: int,
    pid: int | None = None,
    stack_cpu: components.StackCpu | None = None,
) -> dict[str, Any]:
    """One wrk run: requests/s, latency percentiles (ms), errors and server CPU per request
    (of the process ``pid``, and of each part of the stack with ``stack_cpu``)."""
    body_file = None
    if sc.body is not None:
        body_file = args.tmp / ("body-" + "".join(c if c.isalnum() else "_" for c in sc.name))
        if not body_file.exists():
            body_file.write_bytes(sc.body)
    request = wrk.Request(url, sc.method, body_file, sc.content_type)
    cpu_before = cpu.process_seconds(pid)
    stack_before = stack_cpu.snapshot() if stack_cpu else None
    r = wrk.run(
        request,
        connections=args.connections,
        duration=duration,
        cpus=args.wrk_cpus if args.pin_wrk else None,
        wrk=args.wrk,
    )
    cpu_after = cpu.process_seconds(pid)
    by_component = replica_mib = None
    if stack_cpu and stack_before is not None:
        by_component = components.us_per_request(stack_before, stack_cpu.snapshot(), r.requests)
        replica_mib = stack_cpu.replica_mib()
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and r.requests:
        cpu_us = (cpu_after - cpu_before) / r.requests * 1e6
    return {
        "rps": r.rps,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "cpu_us_per_request": cpu_us,
        "cpu_us_by_component": by_component,
        "replica_mib": replica_mib,
        "errors": r.errors,
        "raw": r.raw,
    }


def summarize(where: str, sc: Scenario, app: str, rs: list[dict[str, Any]]) -> dict[str, Any]:
    """One (scenario, app) pair over its rounds: medians, summed errors, every run."""
    rps = statistics.median(r["rps"] for r in rs)
    cpus = [r["cpu_us_per_request"] for r in rs if r["cpu_us_per_request"] is not None]
    by_component = [r["cpu_us_by_component"] for r in rs if r.get("cpu_us_by_component")]
    replica_mib = [r["replica_mib"] for r in rs if r.get("replica_mib") is not None]
    return {
        "where": where,
        "scenario": sc.name,
        "app": app,
        "method": sc.method,
        "path": sc.path.split("?")[0],
        "content_type": sc.content_type if sc.body is not None else None,
        "rows_per_request": sc.rows,
        "rps": rps,
        "rows_per_s": rps * sc.rows,
        "p50_ms": statistics.median(r["p50_ms"] for r in rs),
        "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        "cpu_us_per_request": statistics.median(cpus) if cpus else None,
        "cpu_us_by_component": (
            components.median_by_component(by_component) if by_component else None
        ),
        "replica_mib": max(replica_mib) if replica_mib else None,
        "errors": sum(r["errors"] for r in rs),
        "valid": all(r["errors"] == 0 for r in rs),
        "runs": rs,
    }


def measure(
    scs: list[Scenario],
    urls: dict[str, str],
    args: argparse.Namespace,
    where: str,
    pids: dict[str, int] | None = None,
    stack_cpu: components.StackCpu | None = None,
) -> list[dict[str, Any]]:
    """Warm up, then interleave rounds over every (scenario, app); medians per pair."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    pairs = [(sc, app) for sc in scs for app in sc.apps if app in urls]
    for sc in scs:
        check_scenario(sc, {a: urls[a] for a in sc.apps if a in urls})
    for sc, app in pairs:  # warm-up: caches, lazy imports, connection pools
        run_wrk(urls[app] + sc.path, sc, args, args.warmup)
    for rnd in range(args.rounds):
        for sc, app in pairs:
            pid = (pids or {}).get(app)
            r = run_wrk(urls[app] + sc.path, sc, args, args.duration, pid, stack_cpu)
            runs.setdefault((sc.name, app), []).append(r)
            cpu_us = r["cpu_us_per_request"]
            print(
                f"  [{where} round {rnd + 1}/{args.rounds}] {sc.name:26s} {app:9s} "
                f"{r['rps']:10.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                + (f"  cpu {cpu_us:8.1f} us/req" if cpu_us is not None else "")
                + (f"  {r['errors']} ERRORS" if r["errors"] else ""),
                flush=True,
            )
    return [summarize(where, sc, app, runs[(sc.name, app)]) for sc, app in pairs]


@contextlib.contextmanager
def bench_stack(args: argparse.Namespace) -> Iterator[str]:  # pragma: no cover - needs Docker
    """Our own Compose project (images tagged ``bench``), removed again on exit."""
    project = Project({**COMPOSE_ENV, "LB_PORT": str(args.lb_port)}, echo=True)
    try:
        project.build("model", "lb", timeout=600)
        project.run("up", "-d", "--wait", "lb", timeout=240)
        yield f"http://127.0.0.1:{args.lb_port}"
    finally:
        project.down(timeout=120)


def lb_scenarios(scs: list[Scenario]) -> list[Scenario]:
    """What is measured through the load balancer: single rows and the diabetes JSON batch."""
    chosen = [sc for sc in scs if sc.single or sc.name == "batch diabetes json 10k"]
    return [replace(sc, apps=("server",)) for sc in chosen]


def measure_lb(scs: list[Scenario], args: argparse.Namespace) -> tuple[list[Any], str]:
    """The load-balancer part, and the note the report carries about it."""
    lb_scs = lb_scenarios(scs)
    if args.lb != "auto" or not lb_scs:
        return [], "skipped (--lb off)"
    if args.lb_url:
        url = args.lb_url.rstrip("/")
        # The stack's parts are read when its project (COMPOSE_PROJECT_NAME, default
        # modelfleet: make up's) runs on this engine.
        project = os.environ.get("COMPOSE_PROJECT_NAME") or "modelfleet"
        stack_cpu = components.StackCpu(project) if docker.available() else None
        results = measure(lb_scs, {"server": url}, args, "lb", stack_cpu=stack_cpu)
        return results, f"measured {args.lb_url}"
    if not docker.available():
        return [], "skipped: Docker is not available and --lb-url is not set"
    return measure_own_stack(lb_scs, args)


def measure_own_stack(
    lb_scs: list[Scenario], args: argparse.Namespace
) -> tuple[list[Any], str]:  # pragma: no cover - needs Docker; make bench runs it
    """The load-balancer part on the bench's own Compose project."""
    note = (
        f"own compose project {COMPOSE_ENV['COMPOSE_PROJECT_NAME']} on 127.0.0.1:"
        f"{args.lb_port}, started and removed by the bench"
    )
    saved_pin, args.pin_wrk = args.pin_wrk, False  # containers use every CPU
    try:
        with bench_stack(args) as url:
            stack_cpu = components.StackCpu(COMPOSE_ENV["COMPOSE_PROJECT_NAME"])
            return measure(lb_scs, {"server": url}, args, "lb", stack_cpu=stack_cpu), note
    finally:
        args.pin_wrk = saved_pin


# --------------------------------------------------------------------------------------------
# Main


def git_commit() -> str | None:
    """HEAD, with ``-dirty`` when services/ or bench/ have changes."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "services", "bench"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    ncpu = os.cpu_count() or 1
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "5")))
    p.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "3")))
    p.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", "1")))
    p.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "8")))
    p.add_argument("--workers", type=int, default=int(env("BENCH_WORKERS", "1")))
    p.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "4")))
    p.add_argument(
        "--server-cpus",
        default=env("BENCH_SERVER_CPUS", f"1-{ncpu - 1}" if ncpu > 1 else ""),
        help="taskset CPU list of the servers (all three share it)",
    )
    p.add_argument("--wrk-cpus", default=env("BENCH_WRK_CPUS", "0"))
    p.add_argument("--wrk", default=env("BENCH_WRK", shutil.which("wrk") or "/usr/bin/wrk"))
    p.add_argument("--model-dir", type=Path, default=Path(env("BENCH_MODEL_DIR", ROOT / "models")))
    p.add_argument(
        "--only", default=env("BENCH_ONLY", ""), help="comma-separated scenario name filters"
    )
    p.add_argument(
        "--lb",
        default=env("BENCH_LB", "auto"),
        choices=("auto", "off"),
        help="auto: measure --lb-url, else an own compose project when Docker works",
    )
    p.add_argument("--lb-url", default=env("BENCH_LB_URL", ""))
    p.add_argument("--lb-port", type=int, default=int(env("BENCH_LB_PORT", "38080")))
    p.add_argument("--out", type=Path, default=Path(env("BENCH_OUT", ROOT / "reports/bench.json")))
    p.add_argument(
        "--generic",
        default=env("BENCH_GENERIC", "on"),
        choices=("on", "off"),
        help="measure the generic model parcels (bench/generic.py)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path(env("BENCH_WORK_DIR", ROOT / "build")),
        help="where the temporary model repository with the generic model is written",
    )
    p.add_argument(
        "--in-process-seconds",
        type=float,
        default=float(env("BENCH_IN_PROCESS_SECONDS", "2")),
        help="time spent timing the generic estimator in process",
    )
    args = p.parse_args(argv)
    args.pin_wrk = ncpu > 1 and bool(args.server_cpus)
    args.model_dir = args.model_dir.resolve()
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wants_generic(args: argparse.Namespace) -> bool:
    """Whether the generic model is measured: ``--generic on`` and, with ``--only``, a filter
    that selects one of its scenarios."""
    if args.generic != "on":
        return False
    names = [Scenario(n, "GET", "/", 1, ()) for n in generic.GENERIC_SINGLE.values()]
    return bool(select(names, args.only))


def generic_report(
    results: list[dict[str, Any]], in_process: dict[str, float] | None
) -> dict[str, Any]:
    """reports/bench.json's ``generic``: the model, the in-process timing, the comparisons."""
    return {
        "model": generic.NAME,
        "version": generic.VERSION,
        "estimator": "Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler), "
        "LogisticRegression)",
        "record": generic.RECORD,
        "in_process_us_per_call": in_process,
        "comparisons": generic.summary(results, in_process),
    }


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    cks: list[dict[str, Any]],
    lb_note: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """reports/bench.json: the host, the settings, the targets, the verdicts, every run (and
    ``extra``, e.g. the generic model's figures)."""
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {
            **{
                k: getattr(args, k)
                for k in ("duration", "rounds", "warmup", "connections", "workers", "threads")
            },
            "gunicorn_config": str(GUNICORN_CONF.relative_to(ROOT)),
            "worker_class": "gthread",
            "server_cpus": args.server_cpus,
            "wrk_cpus": args.wrk_cpus if args.pin_wrk else None,
            "load_balancer": lb_note,
        },
        "targets": {
            "single_row_vs_constant": TARGET_VS_CONSTANT,
            "single_row_vs_naive": TARGET_VS_NAIVE,
            "linear_batch_rows_per_s": TARGET_ROWS_PER_S,
        },
        "checks": cks,
        "results": results,
        **(extra or {}),
    }


def bench(args: argparse.Namespace) -> int:
    if not Path(args.wrk).is_file():
        raise BenchError(f"wrk not found at {args.wrk} (make bench installs it)")
    if not (args.model_dir / "index.json").is_file():
        raise BenchError(f"no model repository (index.json) in {args.model_dir}")
    with contextlib.ExitStack() as stack:
        gen = None
        if wants_generic(args):
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bench-repository-", dir=args.work_dir)
            )
            gen = generic.prepare(args.model_dir, Path(work) / "models")
            print(f"bench: serving {gen.repository}: {args.model_dir} + {generic.NAME}", flush=True)
            args.model_dir = gen.repository
        return bench_on(args, gen)


def stack_cpu_report(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per load-balancer scenario: the stack's CPU per request by component, against the same
    scenario's CPU per request on the host's pinned replica (the ``server`` app)."""
    pinned = {
        r["scenario"]: r["cpu_us_per_request"]
        for r in results
        if r["where"] == "host" and r["app"] == "server"
    }
    return {
        r["scenario"]: components.summary(
            r["cpu_us_by_component"], pinned.get(r["scenario"]), r.get("replica_mib")
        )
        for r in results
        if r["where"] == "lb" and r.get("cpu_us_by_component")
    }


def bench_on(args: argparse.Namespace, gen: generic.Generic | None) -> int:
    """The bench on the repository ``args.model_dir`` (with the generic model when ``gen``)."""
    scs = select(scenarios(args.model_dir), args.only)
    print(
        f"bench: gunicorn gthread workers={args.workers} threads={args.threads} on CPUs "
        f"{args.server_cpus or 'all'}; wrk -t1 -c{args.connections} -d{args.duration:g}s on CPU "
        f"{args.wrk_cpus if args.pin_wrk else 'any'}; {args.rounds} interleaved rounds, medians",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp_name:
        args.tmp = Path(tmp_name)
        logs = args.out.parent / "bench-logs"
        logs.mkdir(parents=True, exist_ok=True)
        with host_apps(args, logs) as apps:
            urls = {name: url for name, (url, _) in apps.items()}
            pids = {name: pid for name, (_, pid) in apps.items()}
            results += measure(scs, urls, args, "host", pids)
        lb_results, lb_note = measure_lb(scs, args)
        results += lb_results
    extra = {}
    if gen is not None and any(sc.model == generic.NAME for sc in scs):
        # Timed with the servers stopped, in the bench process (BLAS pinned as theirs).
        in_process = generic.in_process_us(gen.estimator, gen.record, args.in_process_seconds)
        extra["generic"] = generic_report(results, in_process)
    cks = checks(results)
    stack = stack_cpu_report(results)
    if stack:
        extra["stack_cpu"] = stack
    print(table(results, cks))
    print("\n".join(components.table(stack)))
    if "generic" in extra:
        g = extra["generic"]
        print("\n".join(generic.lines(g["comparisons"], g["in_process_us_per_call"])))
    print(f"\nLoad balancer: {lb_note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report(args, results, cks, lb_note, extra), indent=2) + "\n")
    print(f"Wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from a CI timeout) unwinds through the finally blocks like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return bench(args)
    except BenchError as exc:
        raise SystemExit(f"bench: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
