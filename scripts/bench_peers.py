#!/usr/bin/env python3
"""`make bench-peers`: the same `diabetes` model served by ModelFleet, BentoML and MLflow.

Every server runs on this machine on 127.0.0.1, and wrk (one thread, BENCH_PEERS_CONNECTIONS
keep-alive connections) sends one single-row prediction per request to each in turn for
BENCH_PEERS_SECONDS seconds, interleaved round by round (BENCH_PEERS_ROUNDS rounds), so slow
drift of a shared machine hits everyone alike; the median over rounds is reported.

Targets (each checked once before it is measured: HTTP 200 and a prediction in the answer):

- modelfleet-1: one ModelFleet replica on the host (gunicorn from .venv with the image's
  gunicorn.conf.py, prometheus-client in multiprocess mode as in the image), serving the
  bundle of `make models`; `POST /models/diabetes/predict` with one JSON record;
- bentoml: BentoML 1.4 (`bentoml serve`, scripts/bench_peers_bento.py), `POST /predict`;
- mlflow: `mlflow models serve --env-manager local` (MLflow's scoring server) on an
  mlflow.sklearn model, `POST /invocations` with `{"dataframe_records": [...]}`;
- stack: the whole ModelFleet stack (nginx, REPLICAS replicas with the compose defaults), in
  an own compose project (modelfleet-peers), through its load balancer.

The three host servers get the same worker count (BENCH_PEERS_WORKERS, 1) and, on a machine
with two cores or more, the same single core (taskset -c 0) while wrk runs on another
(taskset -c 1). The stack's containers are not pinned: it is the stack as deployed. The
peers live in throwaway virtual environments under build/peers/ (pinned versions below,
from PyPI), never in the stack or the project's lock files. RSS is the resident memory of
each server's whole process tree after its runs (for the stack: the containers' working set).

Writes reports/peers/README.md and results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "peers"
OUT = ROOT / "reports" / "peers"
VENV = ROOT / ".venv"

PEER_PACKAGES = {
    "mlflow": ["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "pandas==3.1.1", "skops==0.16.0"],
    "bentoml": ["bentoml==1.4.40", "scikit-learn==1.9.1"],
}
ROW = {"pregnant": 6, "glucose": 148, "pressure": 72}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


SECONDS = int(_env("BENCH_PEERS_SECONDS", "10"))
ROUNDS = int(_env("BENCH_PEERS_ROUNDS", "2"))
CONNECTIONS = int(_env("BENCH_PEERS_CONNECTIONS", "16"))
WORKERS = _env("BENCH_PEERS_WORKERS", "1")
BASE_PORT = int(_env("BENCH_PEERS_PORT", "38500"))
PROJECT = _env("BENCH_PEERS_PROJECT", "modelfleet-peers")
WITH_STACK = _env("BENCH_PEERS_STACK", "1") == "1"
# Targets from the issue: ModelFleet single-row throughput against each peer's.
GOALS = {"bentoml": 4.0, "mlflow": 6.0}


@dataclass
class Target:
    name: str
    url: str
    path: str
    body: dict[str, Any]
    label: str
    proc: subprocess.Popen | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rss_mib: float | None = None


# ---- environments and servers ------------------------------------------------------------------


def ensure_venv(peer: str) -> Path:
    """build/peers/<peer>: a venv with the pinned packages (re-made when the pins change)."""
    venv = BUILD / peer
    marker = venv / ".installed"
    pins = "\n".join(PEER_PACKAGES[peer])
    if marker.exists() and marker.read_text() == pins:
        return venv
    print(f"bench-peers: installing {', '.join(PEER_PACKAGES[peer])} into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *PEER_PACKAGES[peer]],
        env={**os.environ, "PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=True,
    )
    marker.write_text(pins)
    return venv


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if (os.cpu_count() or 1) >= 2 else cmd


QUIET = {
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def start(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        pinned(cmd, "0"),
        cwd=cwd,
        env={**os.environ, **QUIET, **env},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: stopped as a whole
    )


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_ready(t: Target, timeout: float = 180) -> dict[str, Any]:
    """Until the target answers the benchmark request with HTTP 200; return that answer."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if t.proc is not None and t.proc.poll() is not None:
            raise SystemExit(f"bench-peers: {t.name} exited ({t.proc.returncode}); see build/peers")
        try:
            r = requests.post(t.url + t.path, json=t.body, timeout=5)
            if r.status_code == 200:
                return r.json()
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(1)
    raise SystemExit(f"bench-peers: {t.name} not ready after {timeout:.0f} s ({last})")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return round(total / 1024, 1)


def compose(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "compose"), *args], cwd=ROOT, env=env, check=True, timeout=600
    )


def stack_rss_mib(project: str) -> float | None:
    """Working set of the stack's serving containers (model replicas and nginx)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from scaling_report import DockerEngine

    engine = DockerEngine()
    total = 0.0
    for cid, service in engine.containers(project).items():
        if service in ("model", "lb"):
            mem = engine.memory_bytes(cid)
            if mem is None:
                return None
            total += mem
    return round(total / 2**20, 1)


# ---- measurement -------------------------------------------------------------------------------

LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, p50/p99 (ms), non-2xx responses and socket errors from `wrk --latency`."""

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        return round(float(m.group(1)) * UNIT_MS[m.group(2)], 3) if m else float("nan")

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in sock.groups()) if sock else 0,
    }


def run_wrk(t: Target, script: Path) -> dict[str, Any]:
    cmd = pinned(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "5s", "--latency",
         "-s", str(script), t.url + t.path],
        "1",
    )  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 60).stdout
    result = parse_wrk(out)
    result["valid"] = result["non2xx"] == 0 and result["socket_errors"] == 0 and result["rps"] > 0
    return result


def median_of(t: Target) -> dict[str, Any]:
    valid = [r for r in t.rounds if r["valid"]]
    if not valid:
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "valid": False}
    return {
        "rps": round(statistics.median(r["rps"] for r in valid), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in valid), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in valid), 3),
        "valid": len(valid) == len(t.rounds),
    }


def render(results: dict[str, Any]) -> str:
    """The Markdown table with ratios to one ModelFleet replica, and the goals."""
    rows = results["targets"]
    base = next(r for r in rows if r["name"] == "modelfleet-1")
    lines = [
        "# ModelFleet against BentoML and MLflow: the same model, the same load",
        "",
        f"Measured {results['created']} on a {results['cores']}-core machine: wrk, 1 thread, "
        f"{results['connections']} connections, {results['seconds']} s per target per round, "
        f"{results['rounds']} interleaved rounds (median reported). Host servers: "
        f"{results['workers']} worker(s) each"
        + (", pinned to one core, wrk on another" if results["pinned"] else "")
        + ". One JSON row per request (`diabetes`: pregnant, glucose, pressure).",
        "",
        "| target | request | req/s | p50 ms | p99 ms | RSS MiB | ModelFleet-1 req/s ÷ this |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = base["rps"] / r["rps"] if r["rps"] else float("inf")
        lines.append(
            f"| {r['name']} | {r['label']} | {r['rps']:.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['rss_mib'] if r['rss_mib'] is not None else 'n/a'} "
            f"| {ratio:.2f}x{'' if r['valid'] else ' (errors: see results.json)'} |"
        )
    lines += ["", "Goals (ModelFleet single-row throughput, same machine, same run):", ""]
    for peer, goal in GOALS.items():
        row = next((r for r in rows if r["name"] == peer), None)
        if row is None or not row["rps"]:
            lines.append(f"- {peer}: not measured")
            continue
        ratio = base["rps"] / row["rps"]
        verdict = "met" if ratio >= goal else "MISSED"
        lines.append(f"- >= {goal:g}x {peer}: measured {ratio:.2f}x, {verdict}")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    BUILD.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    if not (ROOT / "models" / "diabetes" / "manifest.json").exists():
        raise SystemExit("bench-peers: run `make models` first")
    venvs = {peer: ensure_venv(peer) for peer in PEER_PACKAGES}
    mlflow_model = BUILD / "mlflow-model"
    subprocess.run(
        [str(venvs["mlflow"] / "bin" / "python"), "scripts/bench_peers_model.py", "mlflow",
         str(mlflow_model)], cwd=ROOT, check=True,
    )  # fmt: skip

    port = iter(range(BASE_PORT + 1, BASE_PORT + 10))
    targets = [
        Target("modelfleet-1", f"http://127.0.0.1:{next(port)}", "/models/diabetes/predict",
               ROW, "`POST /models/diabetes/predict` record"),
        Target("bentoml", f"http://127.0.0.1:{next(port)}", "/predict", ROW,
               "`POST /predict` record"),
        Target("mlflow", f"http://127.0.0.1:{next(port)}", "/invocations",
               {"dataframe_records": [ROW]}, "`POST /invocations` dataframe_records"),
    ]  # fmt: skip
    stack_env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "LB_PORT": str(BASE_PORT + 80),
        "PROMETHEUS_PORT": str(BASE_PORT + 90),
    }
    if WITH_STACK:
        targets.append(
            Target(
                "stack",
                f"http://127.0.0.1:{BASE_PORT + 80}",
                "/models/diabetes/predict",
                ROW,
                "whole stack through nginx, compose defaults",
            )
        )
    multiproc = Path(tempfile.mkdtemp(prefix="modelfleet-peers-"))
    logs = BUILD / "logs"
    logs.mkdir(exist_ok=True)
    try:
        mf, bento, mlf = targets[:3]
        mf.proc = start(
            [str(VENV / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
             "--bind", mf.url.removeprefix("http://"), "model_server.app:create_app()"],
            ROOT / "services" / "model-server",
            {"MODELFLEET_MODEL_DIR": str(ROOT / "models"), "MODELFLEET_WORKERS": WORKERS,
             "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
            logs / "modelfleet.log",
        )  # fmt: skip
        bento.proc = start(
            [str(venvs["bentoml"] / "bin" / "bentoml"), "serve", "bench_peers_bento:Diabetes",
             "--host", "127.0.0.1", "--port", bento.url.rsplit(":", 1)[1]],
            ROOT / "scripts", {"BENCH_PEERS_WORKERS": WORKERS}, logs / "bentoml.log",
        )  # fmt: skip
        mlf.proc = start(
            [str(venvs["mlflow"] / "bin" / "mlflow"), "models", "serve", "-m", str(mlflow_model),
             "--env-manager", "local", "-h", "127.0.0.1", "-p", mlf.url.rsplit(":", 1)[1],
             "-w", WORKERS],
            ROOT,
            # MLflow execs `uvicorn` through a shell: the venv's bin must be on PATH.
            {"PATH": f"{venvs['mlflow'] / 'bin'}:{os.environ['PATH']}"},
            logs / "mlflow.log",
        )  # fmt: skip
        if WITH_STACK:
            compose("--profile", "*", "down", "-v", "--remove-orphans", env=stack_env)
            compose("up", "-d", "--wait", "--remove-orphans", env=stack_env)
        for t in targets:
            answer = wait_ready(t)
            if "predictions" not in answer:
                raise SystemExit(f"bench-peers: {t.name} answered {answer!r}")
            script = BUILD / f"{t.name}.lua"
            script.write_text(LUA.format(body=json.dumps(t.body)))
            print(f"bench-peers: {t.name} ready, answers {json.dumps(answer)[:80]}", flush=True)
        for rnd in range(1, ROUNDS + 1):
            for t in targets:
                r = run_wrk(t, BUILD / f"{t.name}.lua")
                t.rounds.append(r)
                print(
                    f"round {rnd}/{ROUNDS} {t.name:13} {r['rps']:8.0f} req/s  p50 "
                    f"{r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                    + (
                        ""
                        if r["valid"]
                        else f"  INVALID: {r['non2xx']} non-2xx, {r['socket_errors']} socket errors"
                    ),
                    flush=True,
                )
        for t in targets:
            t.rss_mib = stack_rss_mib(PROJECT) if t.proc is None else tree_rss_mib(t.proc.pid)
    finally:
        for t in targets:
            stop(t.proc)
        if WITH_STACK:
            compose("--profile", "*", "down", "-v", "--remove-orphans", env=stack_env)
        with contextlib.suppress(OSError):
            for f in multiproc.iterdir():
                f.unlink()
            multiproc.rmdir()
    results = {
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "pinned": (os.cpu_count() or 1) >= 2,
        "workers": WORKERS,
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "rounds": ROUNDS,
        "packages": PEER_PACKAGES,
        "targets": [
            {
                "name": t.name,
                "label": t.label,
                **median_of(t),
                "rss_mib": t.rss_mib,
                "per_round": t.rounds,
            }
            for t in targets
        ],
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = render(results)
    (OUT / "README.md").write_text(md)
    print("\n" + md)
    print(f"report: {(OUT / 'README.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
