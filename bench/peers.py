"""`make bench-peers`: the same `diabetes` model served by ModelFleet, BentoML and MLflow.

Run as ``python -m bench.peers`` from the repository root (``make bench-peers`` does).

Every server runs on this machine on 127.0.0.1, and wrk (one thread, BENCH_PEERS_CONNECTIONS
keep-alive connections, bench/request.lua) sends one single-row prediction per request to each
in turn for BENCH_PEERS_SECONDS seconds, interleaved round by round (BENCH_PEERS_ROUNDS rounds),
so slow drift of a shared machine hits everyone alike; the median over rounds is reported.

Targets (each checked once before it is measured: HTTP 200 and a prediction in the answer):

- modelfleet-1: one ModelFleet replica on the host (gunicorn from .venv with the image's
  gunicorn.conf.py, prometheus-client in multiprocess mode as in the image), serving the
  bundle in models/; `POST /models/diabetes/predict` with one JSON record;
- bentoml: BentoML 1.4 (`bentoml serve`, bench/peer_apps/bento_service.py), `POST /predict`;
- mlflow: `mlflow models serve --env-manager local` (MLflow's scoring server) on an
  mlflow.sklearn model, `POST /invocations` with `{"dataframe_records": [...]}`;
- stack: the whole ModelFleet stack (nginx, REPLICAS replicas with the compose defaults), in
  an own compose project (modelfleet-peers), through its load balancer.

The record is the first row of the model's training file, restricted to the features its
manifest lists. The three host servers get the same worker count (BENCH_PEERS_WORKERS, 1) and,
on a machine with two cores or more, the same single core (taskset -c 0) while wrk runs on
another (taskset -c 1). The stack's containers are not pinned: it is the stack as deployed. The
peers live in throwaway virtual environments under build/peers/ (pinned versions below,
from PyPI), never in the stack or the project's lock files. RSS is the resident memory of
each server's whole process tree after its runs (for the stack: the containers' working set).

Writes reports/peers/README.md and results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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

from bench import ROOT, BenchError, models, wrk
from bench.compose import Project
from bench.docker import DockerEngine
from bench.procs import Process, free_port, stop_all, taskset, tree_rss_mib

BUILD = ROOT / "build" / "peers"
OUT = ROOT / "reports" / "peers"
VENV = ROOT / ".venv"
PEER_APPS = ROOT / "bench" / "peer_apps"
MODEL = "diabetes"

PEER_PACKAGES = {
    "mlflow": ["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "pandas==3.1.1", "skops==0.16.0"],
    "bentoml": ["bentoml==1.4.40", "scikit-learn==1.9.1"],
}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


SECONDS = int(_env("BENCH_PEERS_SECONDS", "10"))
ROUNDS = int(_env("BENCH_PEERS_ROUNDS", "2"))
CONNECTIONS = int(_env("BENCH_PEERS_CONNECTIONS", "16"))
WORKERS = _env("BENCH_PEERS_WORKERS", "1")
BASE_PORT = int(_env("BENCH_PEERS_PORT", "38500"))
PROJECT = _env("BENCH_PEERS_PROJECT", "modelfleet-peers")
WITH_STACK = _env("BENCH_PEERS_STACK", "1") == "1"
PINNED = (os.cpu_count() or 1) >= 2
# Targets from the issue: ModelFleet single-row throughput against each peer's.
GOALS = {"bentoml": 4.0, "mlflow": 6.0}
QUIET = {
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass
class Target:
    name: str
    url: str
    path: str
    body: dict[str, Any]
    label: str
    proc: Process | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rss_mib: float | None = None


# ---- environments and servers ------------------------------------------------------------------


def ensure_venv(peer: str) -> Path:  # pragma: no cover - make bench-peers
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


def server(name: str, cmd: list[str], cwd: Path, env: dict[str, str], logs: Path) -> Process:
    """A host server on CPU 0 (when pinned), quiet, its output in build/peers/logs/<name>.log."""
    return Process(
        name,
        [*taskset("0" if PINNED else None), *cmd],
        log=logs / f"{name}.log",
        cwd=cwd,
        env={**os.environ, **QUIET, **env},
    )


def answers(t: Target) -> dict[str, Any] | None:
    """The target's answer to the benchmark request when it is HTTP 200, else None."""
    with contextlib.suppress(requests.RequestException, ValueError):
        r = requests.post(t.url + t.path, json=t.body, timeout=5)
        if r.status_code == 200:
            return dict(r.json())
    return None


def wait_ready(
    t: Target, timeout: float = 180
) -> dict[str, Any]:  # pragma: no cover - make bench-peers
    """Until the target answers the benchmark request with HTTP 200; return that answer."""
    if t.proc is not None:
        t.proc.wait_ready(lambda: answers(t) is not None, timeout=timeout, interval=1)
    else:
        deadline = time.monotonic() + timeout
        while answers(t) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"{t.name} not ready after {timeout:.0f} s")
            time.sleep(1)
    answer = answers(t)
    if answer is None:
        raise BenchError(f"{t.name} stopped answering")
    return answer


# ---- measurement -------------------------------------------------------------------------------


def round_figures(r: wrk.WrkResult) -> dict[str, Any]:
    """One round as results.json records it."""
    out = {
        "rps": round(r.rps, 2),
        "requests": r.requests,
        "p50_ms": round(r.p50_ms, 3),
        "p99_ms": round(r.p99_ms, 3),
        "non2xx": r.status_errors,
        "socket_errors": r.socket_errors,
    }
    out["valid"] = r.errors == 0 and r.rps > 0
    return out


def run_wrk(t: Target, body_file: Path) -> dict[str, Any]:  # pragma: no cover - make bench-peers
    request = wrk.Request(t.url + t.path, "POST", body_file, "application/json")
    result = wrk.run(
        request,
        connections=CONNECTIONS,
        duration=SECONDS,
        timeout="5s",
        cpus="1" if PINNED else None,
    )
    return round_figures(result)


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
    features = results.get("features")
    what = f"`{MODEL}`: {', '.join(features)}" if features else f"`{MODEL}`"
    lines = [
        "# ModelFleet against BentoML and MLflow: the same model, the same load",
        "",
        f"Measured {results['created']} on a {results['cores']}-core machine: wrk, 1 thread, "
        f"{results['connections']} connections, {results['seconds']} s per target per round, "
        f"{results['rounds']} interleaved rounds (median reported). Host servers: "
        f"{results['workers']} worker(s) each"
        + (", pinned to one core, wrk on another" if results["pinned"] else "")
        + f". One JSON row per request ({what}).",
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


def targets(row: dict[str, Any]) -> list[Target]:
    port = iter(range(BASE_PORT + 1, BASE_PORT + 10))
    out = [
        Target("modelfleet-1", f"http://127.0.0.1:{next(port)}", f"/models/{MODEL}/predict",
               row, f"`POST /models/{MODEL}/predict` record"),
        Target("bentoml", f"http://127.0.0.1:{next(port)}", "/predict", row,
               "`POST /predict` record"),
        Target("mlflow", f"http://127.0.0.1:{next(port)}", "/invocations",
               {"dataframe_records": [row]}, "`POST /invocations` dataframe_records"),
    ]  # fmt: skip
    if WITH_STACK:
        out.append(
            Target(
                "stack",
                f"http://127.0.0.1:{BASE_PORT + 80}",
                f"/models/{MODEL}/predict",
                row,
                "whole stack through nginx, compose defaults",
            )
        )
    return out


def measure(
    ts: list[Target], venvs: dict[str, Path], mlflow_model: Path
) -> None:  # pragma: no cover - make bench-peers
    """Start the servers (and the stack), check and measure every target, then stop them."""
    multiproc = Path(tempfile.mkdtemp(prefix="modelfleet-peers-"))
    logs = BUILD / "logs"
    logs.mkdir(exist_ok=True)
    stack = Project(
        {
            "COMPOSE_PROJECT_NAME": PROJECT,
            "LB_PORT": str(BASE_PORT + 80),
            "PROMETHEUS_PORT": str(BASE_PORT + 90),
        }
    )
    mf, bento, mlf = ts[:3]
    mf.proc = server(
        "modelfleet",
        [str(VENV / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
         "--bind", mf.url.removeprefix("http://"), "model_server.app:create_app()"],
        ROOT / "services" / "model-server",
        {"MODELFLEET_MODEL_DIR": str(ROOT / "models"), "MODELFLEET_WORKERS": WORKERS,
         "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "MODELFLEET_PROBE_PORT": str(free_port())},
        logs,
    )  # fmt: skip
    bento.proc = server(
        "bentoml",
        [str(venvs["bentoml"] / "bin" / "bentoml"), "serve", "bento_service:Diabetes",
         "--host", "127.0.0.1", "--port", bento.url.rsplit(":", 1)[1]],
        PEER_APPS, {"BENCH_PEERS_WORKERS": WORKERS}, logs,
    )  # fmt: skip
    mlf.proc = server(
        "mlflow",
        [str(venvs["mlflow"] / "bin" / "mlflow"), "models", "serve", "-m", str(mlflow_model),
         "--env-manager", "local", "-h", "127.0.0.1", "-p", mlf.url.rsplit(":", 1)[1],
         "-w", WORKERS],
        ROOT,
        # MLflow execs `uvicorn` through a shell: the venv's bin must be on PATH.
        {"PATH": f"{venvs['mlflow'] / 'bin'}:{os.environ['PATH']}"},
        logs,
    )  # fmt: skip
    procs = [t.proc for t in ts if t.proc is not None]
    try:
        for p in procs:
            p.start()
        if WITH_STACK:
            stack.down()
            stack.up()
        for t in ts:
            answer = wait_ready(t)
            if "predictions" not in answer:
                raise BenchError(f"{t.name} answered {answer!r}")
            (BUILD / f"{t.name}.json").write_text(json.dumps(t.body))
            print(f"bench-peers: {t.name} ready, answers {json.dumps(answer)[:80]}", flush=True)
        for rnd in range(1, ROUNDS + 1):
            for t in ts:
                r = run_wrk(t, BUILD / f"{t.name}.json")
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
        for t in ts:
            if t.proc is None:
                t.rss_mib = DockerEngine().working_set_mib(PROJECT, ("model", "lb"))
            elif t.proc.pid is not None:
                t.rss_mib = tree_rss_mib(t.proc.pid)
    finally:
        stop_all(procs, timeout=20)
        if WITH_STACK:
            stack.down()
        shutil.rmtree(multiproc, ignore_errors=True)


def peers() -> int:  # pragma: no cover - make bench-peers
    BUILD.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    features = models.features(MODEL)
    row = models.data_rows(models.training_file(MODEL), features, 1)[0]
    venvs = {peer: ensure_venv(peer) for peer in PEER_PACKAGES}
    mlflow_model = BUILD / "mlflow-model"
    subprocess.run(
        [str(venvs["mlflow"] / "bin" / "python"), str(PEER_APPS / "peer_model.py"), "mlflow",
         str(mlflow_model)], cwd=ROOT, check=True,
    )  # fmt: skip
    ts = targets(row)
    measure(ts, venvs, mlflow_model)
    results = {
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "pinned": PINNED,
        "workers": WORKERS,
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "rounds": ROUNDS,
        "packages": PEER_PACKAGES,
        "features": list(features),
        "targets": [
            {
                "name": t.name,
                "label": t.label,
                **median_of(t),
                "rss_mib": t.rss_mib,
                "per_round": t.rounds,
            }
            for t in ts
        ],
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = render(results)
    (OUT / "README.md").write_text(md)
    print("\n" + md)
    print(f"report: {(OUT / 'README.md').relative_to(ROOT)}")
    return 0


def main() -> int:  # pragma: no cover - make bench-peers
    try:
        return peers()
    except BenchError as exc:
        raise SystemExit(f"bench-peers: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
