"""``make bench``: measured throughput and latency of the model server against two baselines.

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
   error is marked invalid rather than counted.

2. **Through the load balancer.** The real Compose stack: ``--lb-url`` (e.g. a running
   ``make up`` stack on http://127.0.0.1:8080), else, when Docker is available, an own
   project ``modelfleet-bench`` on ``--lb-port`` (38080) with images tagged ``bench`` (built
   from the working tree, so the user's ``dev`` images and stacks are never touched), started
   for the measurement and removed afterwards. ``--lb off`` skips it.

Targets (printed as PASS/MISS; a miss does not fail the run, speed is measured, not asserted):
single-row predictions at >= 0.85x the constant endpoint's requests/s and >= 3x the naive
port's; 10,000-row batches of the linear models (diabetes, boston) at >= 1,000,000 rows/s.

Output: a table on stdout and ``--out`` (reports/bench.json) with every run's raw figures.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER_DIR = ROOT / "services" / "model-server"
GUNICORN_CONF = SERVER_DIR / "gunicorn.conf.py"
LUA = ROOT / "bench" / "request.lua"
BATCH_ROWS = 10_000
TARGET_VS_CONSTANT = 0.85
TARGET_VS_NAIVE = 3.0
TARGET_ROWS_PER_S = 1_000_000
LINEAR_MODELS = ("diabetes", "boston")
DIABETES = ("pregnant", "glucose", "pressure")
BOSTON = ("crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax")
SINGLE_QUERY = "pregnant=1&glucose=3&pressure=1"
SINGLE_RECORD = {"pregnant": 1, "glucose": 3, "pressure": 1}
COMPOSE_ENV = {
    "COMPOSE_PROJECT_NAME": "modelfleet-bench",
    "PROMETHEUS_PORT": "39090",
    "MODELFLEET_TAG": "bench",
}


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    """One kind of request, sent by wrk to every app in ``apps``."""

    name: str
    method: str
    path: str
    rows: int
    apps: tuple[str, ...]
    body: bytes | None = None
    content_type: str = "application/json"
    model: str = "diabetes"
    single: bool = False
    check: Callable[[Any], str | None] = field(default=lambda _: None, compare=False)


def _answer_no(body: Any) -> str | None:
    answers = body.get("Answer", body.get("predictions"))
    return None if answers == ["no"] else f"expected the answer ['no'], got {body!r:.200}"


def _rows_check(n: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        got = len(body.get("predictions", []))
        return None if got == n else f"expected {n} predictions, got {got}"

    return check


def _data_rows(file: str, features: tuple[str, ...], n: int) -> list[dict[str, float]]:
    """``n`` rows of the vendored data (cycled), as numbers: realistic values in range."""
    with (ROOT / "data" / file).open(newline="") as f:
        table = list(csv.DictReader(f))
    out = []
    for i in range(n):
        src = table[i % len(table)]
        out.append({k: _number(src[k]) for k in features})
    return out


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _csv_body(rows: list[dict[str, float]], features: tuple[str, ...]) -> bytes:
    lines = [",".join(features)]
    lines += [",".join(str(r[k]) for k in features) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def scenarios() -> list[Scenario]:
    """The measured requests: single rows on all three apps, 10,000-row batches."""
    all3 = ("server", "constant", "naive")
    out = [
        Scenario(
            "single GET /predict_data",
            "GET",
            f"/predict_data?{SINGLE_QUERY}",
            1,
            all3,
            single=True,
            check=_answer_no,
        ),
        Scenario(
            "single POST json",
            "POST",
            "/models/diabetes/predict",
            1,
            all3,
            body=json.dumps(SINGLE_RECORD).encode(),
            single=True,
            check=_answer_no,
        ),
    ]
    for model, file, features in (
        ("diabetes", "pima_indians_diabetes.csv", DIABETES),
        ("boston", "boston_housing.csv", BOSTON),
    ):
        rows = _data_rows(file, features, BATCH_ROWS)
        arrays = [[r[k] for k in features] for r in rows]
        for fmt, body, ctype in (
            ("json", json.dumps(rows, separators=(",", ":")).encode(), "application/json"),
            ("rows", json.dumps(arrays, separators=(",", ":")).encode(), "application/json"),
            ("csv", _csv_body(rows, features), "text/csv"),
        ):
            out.append(
                Scenario(
                    f"batch {model} {fmt} 10k",
                    "POST",
                    f"/models/{model}/predict",
                    BATCH_ROWS,
                    ("server", "naive"),
                    body=body,
                    content_type=ctype,
                    model=model,
                    check=_rows_check(BATCH_ROWS),
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


@dataclass
class App:
    """A gunicorn server started by the bench."""

    name: str
    target: str
    pythonpath: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_apps(apps: list[App], args: argparse.Namespace, logs: Path, tmp: Path) -> None:
    """Start every app with the same gunicorn config, settings and CPU set."""
    for app in apps:
        app.port = _free_port()
        multiproc = tmp / f"prometheus-{app.name}"
        multiproc.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SERVER_DIR), str(app.pythonpath)]),
            "MODELFLEET_MODEL_DIR": str(args.model_dir),
            "MODELFLEET_WORKERS": str(args.workers),
            "MODELFLEET_THREADS": str(args.threads),
            "MODELFLEET_REPLICA_ID": f"bench-{app.name}",
            "MODELFLEET_ACCESS_LOG": "false",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "BENCH_DATA_DIR": str(ROOT / "data"),
        }
        app.log = logs / f"{app.name}.log"
        cmd = [
            *_taskset(args.server_cpus),
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{app.port}",
            app.target,
        ]
        with app.log.open("wb") as log:
            app.proc = subprocess.Popen(
                cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    deadline = time.monotonic() + 90
    for app in apps:
        while True:
            assert app.proc is not None
            if app.proc.poll() is not None:
                raise SystemExit(f"bench: {app.name} exited; see {app.log}")
            try:
                with _urlopen(f"{app.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {app.name} not ready after 90 s; see {app.log}")
            time.sleep(0.2)


def stop_apps(apps: list[App]) -> None:
    """SIGTERM each gunicorn master we started, then SIGKILL its group if it lingers."""
    for app in apps:
        if app.proc and app.proc.poll() is None:
            app.proc.terminate()
    for app in apps:
        if not app.proc:
            continue
        try:
            app.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(app.proc.pid, signal.SIGKILL)
            app.proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------
# Requests and wrk


def _urlopen(req: str | urllib.request.Request, timeout: float) -> Any:
    """urlopen for http(s) URLs only: BENCH_LB_URL comes from the caller's environment, and
    urllib would just as well open file:// or ftp:// ones."""
    url = req.full_url if isinstance(req, urllib.request.Request) else req
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SystemExit(f"bench: not an http(s) URL: {url}")
    # bandit's B310 (file:// and custom schemes) is what the check above rules out.
    return urllib.request.urlopen(req, timeout=timeout)  # nosec B310


def _request(url: str, sc: Scenario) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=sc.body, method=sc.method)
    if sc.body is not None:
        req.add_header("Content-Type", sc.content_type)
    try:
        with _urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def check_scenario(sc: Scenario, urls: dict[str, str]) -> None:
    """One request per app before measuring: status 200, expected answer, apps agree."""
    answers = {}
    for app, base in urls.items():
        status, body = _request(base + sc.path, sc)
        if status != 200:
            raise SystemExit(f"bench: {sc.name} on {app}: HTTP {status}: {body!r}")
        problem = sc.check(body)
        if problem:
            raise SystemExit(f"bench: {sc.name} on {app}: {problem}")
        answers[app] = body.get("predictions", body.get("Answer"))
    if "naive" in answers and "server" in answers and sc.rows > 1:
        a, b = answers["server"], answers["naive"]
        if sc.model == "boston":
            same = all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))
        else:
            same = a == b
        if not same:
            raise SystemExit(f"bench: {sc.name}: the server and the naive port disagree")


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) of a gunicorn master and its workers, dead ones included.

    Read from /proc: the CPU a server spends per request is far less sensitive to other load
    on the machine than requests/s, so the report carries both.
    """
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int | str, children: bool) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        # After the command: state is field 3; utime, stime, cutime, cstime are 14-17.
        own = int(fields[11]) + int(fields[12])
        return (own + (int(fields[13]) + int(fields[14]) if children else 0)) / tick

    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return stat(pid, True) + sum(stat(k, False) for k in kids)


def run_wrk(
    url: str, sc: Scenario, args: argparse.Namespace, duration: int, pid: int | None = None
) -> dict[str, Any]:
    """One wrk run: requests/s, latency percentiles (ms), errors and server CPU per request."""
    env = {**os.environ, "BENCH_METHOD": sc.method, "BENCH_CONTENT_TYPE": sc.content_type}
    body_file = None
    if sc.body is not None:
        body_file = args.tmp / ("body-" + "".join(c if c.isalnum() else "_" for c in sc.name))
        if not body_file.exists():
            body_file.write_bytes(sc.body)
        env["BENCH_BODY_FILE"] = str(body_file)
    cmd = [
        *_taskset(args.wrk_cpus if args.pin_wrk else None),
        args.wrk,
        "-t1",
        f"-c{args.connections}",
        f"-d{max(1, duration)}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    cpu_after = cpu_seconds(pid)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(
        raw[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    seconds = raw["duration_us"] / 1e6
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and raw["requests"]:
        cpu_us = (cpu_after - cpu_before) / raw["requests"] * 1e6
    return {
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["latency_p50_us"] / 1000,
        "p99_ms": raw["latency_p99_us"] / 1000,
        "cpu_us_per_request": cpu_us,
        "errors": errors,
        "raw": raw,
    }


def measure(
    scs: list[Scenario],
    urls: dict[str, str],
    args: argparse.Namespace,
    where: str,
    pids: dict[str, int] | None = None,
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
            r = run_wrk(urls[app] + sc.path, sc, args, args.duration, (pids or {}).get(app))
            runs.setdefault((sc.name, app), []).append(r)
            cpu = r["cpu_us_per_request"]
            print(
                f"  [{where} round {rnd + 1}/{args.rounds}] {sc.name:26s} {app:9s} "
                f"{r['rps']:10.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                + (f"  cpu {cpu:8.1f} us/req" if cpu is not None else "")
                + (f"  {r['errors']} ERRORS" if r["errors"] else ""),
                flush=True,
            )
    results = []
    for sc, app in pairs:
        rs = runs[(sc.name, app)]
        rps = statistics.median(r["rps"] for r in rs)
        cpus = [r["cpu_us_per_request"] for r in rs if r["cpu_us_per_request"] is not None]
        results.append(
            {
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
                "errors": sum(r["errors"] for r in rs),
                "valid": all(r["errors"] == 0 for r in rs),
                "runs": rs,
            }
        )
    return results


# --------------------------------------------------------------------------------------------
# Load balancer


@contextlib.contextmanager
def bench_stack(args: argparse.Namespace) -> Iterator[str]:
    """Our own Compose project (images tagged ``bench``), removed again on exit."""
    env = {**os.environ, **COMPOSE_ENV, "LB_PORT": str(args.lb_port)}
    compose = str(ROOT / "scripts" / "compose")

    def run(*cmd: str, timeout: float) -> None:
        print(f"  $ scripts/compose {' '.join(cmd)}", flush=True)
        subprocess.run([compose, *cmd], env=env, cwd=ROOT, check=True, timeout=timeout)

    try:
        run("build", "model", "lb", timeout=600)
        run("up", "-d", "--wait", "lb", timeout=240)
        yield f"http://127.0.0.1:{args.lb_port}"
    finally:
        run("--profile", "*", "down", "-v", "--remove-orphans", timeout=120)


def _docker_ok() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# --------------------------------------------------------------------------------------------
# Report


def checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, evaluated on the host results."""
    by = {(r["scenario"], r["app"]): r for r in results if r["where"] == "host"}
    out = []
    for (scenario, app), r in by.items():
        if app != "server":
            continue
        if r["rows_per_request"] == 1:
            for base, target in (("constant", TARGET_VS_CONSTANT), ("naive", TARGET_VS_NAIVE)):
                b = by.get((scenario, base))
                if b and b["rps"]:
                    ratio = r["rps"] / b["rps"]
                    out.append(
                        {
                            "check": f"{scenario}: server vs {base}",
                            "value": round(ratio, 3),
                            "target": f">= {target}x",
                            "pass": ratio >= target and r["valid"] and b["valid"],
                        }
                    )
        elif any(f"batch {m} " in scenario for m in LINEAR_MODELS):
            out.append(
                {
                    "check": f"{scenario}: server rows/s",
                    "value": round(r["rows_per_s"]),
                    "target": f">= {TARGET_ROWS_PER_S:,}",
                    "pass": r["rows_per_s"] >= TARGET_ROWS_PER_S and r["valid"],
                }
            )
    return out


def print_table(results: list[dict[str, Any]], cks: list[dict[str, Any]]) -> None:
    by = {(r["where"], r["scenario"], r["app"]): r for r in results}
    head = (
        f"{'where':5s} {'scenario':26s} {'app':9s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'rows/s':>11s} {'/constant':>9s} {'/naive':>7s} {'cpu us/req':>10s}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        c = by.get((r["where"], r["scenario"], "constant"))
        n = by.get((r["where"], r["scenario"], "naive"))
        vs_c = f"{r['rps'] / c['rps']:.2f}x" if c and c["rps"] and r["app"] != "constant" else ""
        vs_n = f"{r['rps'] / n['rps']:.2f}x" if n and n["rps"] and r["app"] == "server" else ""
        flag = "" if r["valid"] else "  INVALID: errors"
        cpu = r["cpu_us_per_request"]
        cpu_text = f"{cpu:10.1f}" if cpu is not None else f"{'-':>10s}"
        print(
            f"{r['where']:5s} {r['scenario']:26s} {r['app']:9s} {r['rps']:9.1f} "
            f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rows_per_s']:11,.0f} {vs_c:>9s} "
            f"{vs_n:>7s} {cpu_text}{flag}"
        )
    print("\nTargets (measured, not asserted):")
    for ck in cks:
        value = f"{ck['value']:,}" if isinstance(ck["value"], int) else f"{ck['value']}x"
        print(
            f"  {'PASS' if ck['pass'] else 'MISS'}  {ck['check']:50s} {value:>12s}  "
            f"(target {ck['target']})"
        )


def _git_commit() -> str | None:
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


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    ncpu = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    args = p.parse_args(argv)
    args.pin_wrk = ncpu > 1 and bool(args.server_cpus)
    args.model_dir = args.model_dir.resolve()
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.wrk).is_file():
        raise SystemExit(f"bench: wrk not found at {args.wrk} (make bench installs it)")
    if not (args.model_dir / "diabetes" / "manifest.json").is_file():
        raise SystemExit(f"bench: no models in {args.model_dir}; run make models")
    # SIGTERM (e.g. from a CI timeout) unwinds through the finally blocks like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    scs = scenarios()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        scs = [s for s in scs if any(w in s.name for w in wanted)]
    settings = {
        k: getattr(args, k)
        for k in ("duration", "rounds", "warmup", "connections", "workers", "threads")
    }
    print(
        f"bench: gunicorn gthread workers={args.workers} threads={args.threads} on CPUs "
        f"{args.server_cpus or 'all'}; wrk -t1 -c{args.connections} -d{args.duration:g}s on CPU "
        f"{args.wrk_cpus if args.pin_wrk else 'any'}; {args.rounds} interleaved rounds, medians",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    lb_note = "skipped (--lb off)"
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp_name:
        args.tmp = Path(tmp_name)
        logs = args.out.parent / "bench-logs"
        logs.mkdir(parents=True, exist_ok=True)
        sdir = SERVER_DIR
        apps = [
            App("server", "model_server.app:create_app()", sdir),
            App("constant", "constant_app:app", ROOT / "bench" / "baselines"),
            App("naive", "naive_app:app", ROOT / "bench" / "baselines"),
        ]
        try:
            start_apps(apps, args, logs, args.tmp)
            urls = {a.name: a.url for a in apps}
            pids = {a.name: a.proc.pid for a in apps if a.proc}
            results += measure(scs, urls, args, "host", pids)
        finally:
            stop_apps(apps)
        lb_scs = [sc for sc in scs if sc.single or sc.name in ("batch diabetes json 10k",)]
        lb_scs = [Scenario(**{**sc.__dict__, "apps": ("server",)}) for sc in lb_scs]
        if args.lb == "auto" and lb_scs:
            if args.lb_url:
                lb_note = f"measured {args.lb_url}"
                results += measure(lb_scs, {"server": args.lb_url.rstrip("/")}, args, "lb")
            elif _docker_ok():
                lb_note = (
                    f"own compose project {COMPOSE_ENV['COMPOSE_PROJECT_NAME']} on 127.0.0.1:"
                    f"{args.lb_port}, started and removed by the bench"
                )
                saved_pin, args.pin_wrk = args.pin_wrk, False  # containers use every CPU
                with bench_stack(args) as url:
                    results += measure(lb_scs, {"server": url}, args, "lb")
                args.pin_wrk = saved_pin
            else:
                lb_note = "skipped: Docker is not available and --lb-url is not set"
    cks = checks(results)
    print_table(results, cks)
    print(f"\nLoad balancer: {lb_note}")
    report = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": _git_commit(),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {
            **settings,
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
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
