"""ModelFleet load scenario: the traffic mix a client fleet sends through the load balancer.

Run it with `make load` (headless, bounded, reports in reports/load/) or open the web UI with
`docker compose --profile loadtest up` (http://127.0.0.1:${LOCUST_PORT:-8089}).

The mix, across the three seed models (diabetes, diabetes-gbt, boston), per 13 requests:

    weight  request                                               body
    3       GET  /predict_data?<features>                          plumber, default model
    2       GET  /models/<model>/predict_data?<features>           plumber, named model
    4       POST /models/<model>/predict                           one JSON record
    1       POST /models/<model>/predict                           a list of BATCH_ROWS records
    1       POST /models/<model>/predict                           columnar {"inputs": {...}}
    2       POST /models/<model>/predict  (text/csv)               BATCH_ROWS rows, header or not

The models, their features and their training files come from the target itself when the test
starts (`GET /models`, then `GET /models/<name>` for each manifest), so a new model or feature
needs no change here. Rows are real rows of those training files (the vendored CSVs in data/),
so every value lies in the model's range.
Every answer is checked: HTTP 200 and one prediction per row sent; anything else is a failure.

Pass/fail thresholds (stated here; the environment can tighten or relax them for one run):

    LOADGEN_MAX_ERROR_RATIO   0.01   failed requests / all requests
    LOADGEN_MAX_P99_MS        1000   p99 of all requests in ms, as Locust measures it
                                     (client side, through the load balancer); 0 disables

A missed threshold sets Locust's exit code to 1 (the `quitting` hook below), so `make load`
fails. Safety bounds, enforced here whatever the command line says, so a run always stops by
itself and only ever targets the project's own load balancer:

    LOADGEN_MAX_USERS         200    more users than this refuse to start (web UI: stop)
    LOADGEN_MAX_SECONDS       600    any test stops after this many seconds
    LOADGEN_MAX_REQUESTS      500000 any test stops after this many requests
    LOADGEN_ALLOWED_HOSTS     lb,localhost   target host names allowed besides loopback IPs

Other settings: LOCUST_HOST (the target, e.g. http://lb:8080), LOADGEN_WAIT_MIN/MAX (think
time per user in seconds, default 0 and 0.1; 0 and 0 measures capacity), LOADGEN_BATCH_ROWS
(10), LOADGEN_PROGRESS_SECONDS (5), LOADGEN_SUMMARY (write the summary as JSON to this path).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import logging
import os
import random
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import gevent
import requests
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import CatchResponseError, StopUser
from locust.runners import WorkerRunner

log = logging.getLogger("modelfleet.loadgen")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# ---- thresholds and bounds ------------------------------------------------------------------
MAX_ERROR_RATIO = _env_float("LOADGEN_MAX_ERROR_RATIO", 0.01)
MAX_P99_MS = _env_float("LOADGEN_MAX_P99_MS", 1000)
MAX_USERS = int(_env_float("LOADGEN_MAX_USERS", 200))
MAX_SECONDS = _env_float("LOADGEN_MAX_SECONDS", 600)
MAX_REQUESTS = int(_env_float("LOADGEN_MAX_REQUESTS", 500_000))
ALLOWED_HOSTS = {
    h.strip() for h in os.environ.get("LOADGEN_ALLOWED_HOSTS", "lb,localhost").split(",") if h
}

WAIT_MIN = _env_float("LOADGEN_WAIT_MIN", 0.0)
WAIT_MAX = _env_float("LOADGEN_WAIT_MAX", 0.1)
BATCH_ROWS = int(_env_float("LOADGEN_BATCH_ROWS", 10))
PROGRESS_SECONDS = _env_float("LOADGEN_PROGRESS_SECONDS", 5)

# ---- the data: what the target serves, real rows of the vendored CSVs ------------------------
#: model -> (training file, features), and the default model: from the target at test start.
MODELS: dict[str, tuple[str, list[str]]] = {}
DEFAULT_MODEL: list[str] = []


def fetch_models(host: str) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    """The target's default model, and each model's training file and features."""
    base = host.rstrip("/")
    listing = requests.get(f"{base}/models", timeout=10)
    listing.raise_for_status()
    body = listing.json()
    models = {}
    for m in body["models"]:
        manifest = requests.get(f"{base}/models/{m['name']}", timeout=10)
        manifest.raise_for_status()
        models[m["name"]] = (manifest.json()["training_data"]["file"], list(m["features"]))
    return body["default_model"], models


def _data_dir() -> Path:
    """The image ships the CSVs in /app/data; from a checkout, the repository's data/."""
    configured = os.environ.get("LOADGEN_DATA_DIR")
    if configured:
        return Path(configured)
    for candidate in (Path("/app/data"), Path(__file__).resolve().parents[2] / "data"):
        if candidate.is_dir():
            return candidate
    raise SystemExit("loadgen: no data directory; set LOADGEN_DATA_DIR")


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _load_rows() -> dict[str, list[dict[str, str]]]:
    """Per model, the CSV rows restricted to the model's features (values as written)."""
    rows: dict[str, list[dict[str, str]]] = {}
    for model, (file, features) in MODELS.items():
        with (_data_dir() / file).open(newline="", encoding="utf-8") as f:
            rows[model] = [{k: r[k] for k in features} for r in csv.DictReader(f)]
    return rows


ROWS: dict[str, list[dict[str, str]]] = {}


def load(host: str) -> None:
    """Learn the target's models and read their rows (once per process)."""
    if MODELS:
        return
    default, models = fetch_models(host)
    MODELS.update(models)
    DEFAULT_MODEL[:] = [default]
    ROWS.update(_load_rows())


def _sample(model: str, n: int) -> list[dict[str, str]]:
    return random.choices(ROWS[model], k=n)


def _records(rows: list[dict[str, str]]) -> list[dict[str, int | float]]:
    return [{k: _number(v) for k, v in r.items()} for r in rows]


def _csv(rows: list[dict[str, str]], header: bool) -> str:
    features = list(rows[0])
    lines = [",".join(features)] if header else []
    lines += [",".join(r[f] for f in features) for r in rows]
    return "\n".join(lines) + "\n"


# ---- the target ------------------------------------------------------------------------------


def check_target(host: str | None) -> str | None:
    """Why `host` must not be loaded, or None when it is the project's own endpoint."""
    if not host:
        return "no target host: set LOCUST_HOST (e.g. http://lb:8080)"
    name = urlsplit(host).hostname or ""
    if name in ALLOWED_HOSTS:
        return None
    try:
        if ipaddress.ip_address(name).is_loopback:
            return None
    except ValueError:
        pass
    return f"target {host!r} is neither a loopback address nor one of {sorted(ALLOWED_HOSTS)}"


# ---- the user --------------------------------------------------------------------------------


class ModelFleetClient(FastHttpUser):
    """One client: keep-alive connection, a think time, the weighted request mix."""

    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self) -> None:
        """Check the target before the first request (the web UI can change the host)."""
        problem = check_target(self.host)
        if problem:
            gevent.spawn_later(0, _stop, self.environment, problem)
            raise StopUser
        if not MODELS:  # the test_start hook could not ask the target (it logged why)
            raise StopUser

    def _check(self, response, rows: int, key: str = "predictions") -> None:
        """Mark the response failed unless it is HTTP 200 with one prediction per row."""
        if response.status_code != 200:
            detail = f"HTTP {response.status_code}" if response.status_code else "no response"
            if response.error and not response.status_code:
                detail += f": {type(response.error).__name__}"
            response.failure(detail)
            return
        try:
            answers = response.json()[key]
        except (ValueError, KeyError, TypeError):
            response.failure(f"HTTP 200 without {key!r}")
            return
        if len(answers) != rows:
            response.failure(f"HTTP 200 with {len(answers)} predictions for {rows} rows")
        else:
            response.success()

    def _post(self, kind: str, model: str, body: str, content_type: str, rows: int) -> None:
        with self.client.post(
            f"/models/{model}/predict",
            data=body,
            headers={"Content-Type": content_type},
            name=f"{kind} {model}",
            catch_response=True,
        ) as r:
            self._check(r, rows)

    @task(3)
    def plumber_default(self) -> None:
        query = urlencode(_sample(DEFAULT_MODEL[0], 1)[0])
        with self.client.get(
            f"/predict_data?{query}", name="plumber /predict_data", catch_response=True
        ) as r:
            self._check(r, 1, key="Answer")

    @task(2)
    def plumber_model(self) -> None:
        model = random.choice(list(MODELS))
        query = urlencode(_sample(model, 1)[0])
        with self.client.get(
            f"/models/{model}/predict_data?{query}", name=f"plumber {model}", catch_response=True
        ) as r:
            self._check(r, 1, key="Answer")

    @task(4)
    def json_record(self) -> None:
        model = random.choice(list(MODELS))
        body = json.dumps(_records(_sample(model, 1))[0])
        self._post("json-row", model, body, "application/json", 1)

    @task(1)
    def json_batch(self) -> None:
        model = random.choice(list(MODELS))
        body = json.dumps(_records(_sample(model, BATCH_ROWS)))
        self._post("json-batch", model, body, "application/json", BATCH_ROWS)

    @task(1)
    def json_columnar(self) -> None:
        model = random.choice(list(MODELS))
        records = _records(_sample(model, BATCH_ROWS))
        body = json.dumps({"inputs": {f: [r[f] for r in records] for f in records[0]}})
        self._post("json-columns", model, body, "application/json", BATCH_ROWS)

    @task(2)
    def csv_rows(self) -> None:
        model = random.choice(list(MODELS))
        header = random.random() < 0.5
        body = _csv(_sample(model, BATCH_ROWS), header)
        self._post("csv" if header else "csv-noheader", model, body, "text/csv", BATCH_ROWS)


# ---- bounds, progress, summary and verdict ---------------------------------------------------


@events.init.add_listener
def _refuse_unbounded(environment: Environment, **_: object) -> None:
    """A headless run must name an allowed target, at most MAX_USERS users and a run time."""
    options = environment.parsed_options
    if options is None or not options.headless or isinstance(environment.runner, WorkerRunner):
        return
    problems = [check_target(environment.host)]
    if options.num_users is None or options.num_users > MAX_USERS:
        problems.append(f"--users must be between 1 and {MAX_USERS} (LOADGEN_MAX_USERS)")
    if not options.run_time:
        problems.append("--run-time is required in headless mode")
    problems = [p for p in problems if p]
    if problems:
        for p in problems:
            log.error("refusing to start: %s", p)
        # Before any user exists: nothing has been sent, nothing to report.
        raise SystemExit(2)


def _stop(environment: Environment, why: str) -> None:
    log.warning("stopping the test: %s", why)
    if environment.parsed_options is not None and environment.parsed_options.headless:
        environment.runner.quit()
    else:
        environment.runner.stop()


def _watch(environment: Environment) -> None:
    """Enforce the bounds and print one progress line every PROGRESS_SECONDS."""
    started = time.monotonic()
    next_line = started + PROGRESS_SECONDS
    total = environment.stats.total
    while True:
        gevent.sleep(0.25)
        now = time.monotonic()
        if environment.runner.user_count > MAX_USERS:
            return _stop(environment, f"more than {MAX_USERS} users (LOADGEN_MAX_USERS)")
        if now - started > MAX_SECONDS:
            return _stop(environment, f"ran {MAX_SECONDS:.0f} s (LOADGEN_MAX_SECONDS)")
        if total.num_requests >= MAX_REQUESTS:
            return _stop(environment, f"sent {MAX_REQUESTS} requests (LOADGEN_MAX_REQUESTS)")
        if PROGRESS_SECONDS > 0 and now >= next_line:
            next_line += PROGRESS_SECONDS
            p50 = total.get_current_response_time_percentile(0.5) or 0
            p99 = total.get_current_response_time_percentile(0.99) or 0
            print(
                f"[{now - started:5.0f} s] users {environment.runner.user_count:3d}"
                f"  requests {total.num_requests:7d}  failures {total.num_failures:5d}"
                f"  now {total.current_rps:7.1f} req/s  p50 {p50:4.0f} ms  p99 {p99:5.0f} ms",
                flush=True,
            )


_watcher: list[gevent.Greenlet] = []


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: object) -> None:
    if environment.host and check_target(environment.host) is None:
        try:
            load(environment.host)
        except (requests.RequestException, ValueError, KeyError) as exc:
            gevent.spawn_later(0, _stop, environment, f"cannot list the target's models: {exc}")
    if isinstance(environment.runner, WorkerRunner):
        return
    _watcher.append(gevent.spawn(_watch, environment))


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: object) -> None:
    while _watcher:
        _watcher.pop().kill(block=False)


def error_type(error: object) -> str:
    """A failure as one readable line: our own failure messages as they are, else the class."""
    if isinstance(error, CatchResponseError):
        return str(error)
    if isinstance(error, Exception):
        return f"{type(error).__name__}: {error}".rstrip(": ")
    return str(error)


def summarize(environment: Environment) -> dict:
    """The run's numbers: totals, per request name, errors by type, thresholds and verdict."""
    stats = environment.stats
    total = stats.total

    def entry(e) -> dict:
        return {
            "name": e.name,
            "method": e.method,
            "requests": e.num_requests,
            "failures": e.num_failures,
            "rps": round(e.total_rps, 2),
            "p50_ms": e.get_response_time_percentile(0.5),
            "p95_ms": e.get_response_time_percentile(0.95),
            "p99_ms": e.get_response_time_percentile(0.99),
            "max_ms": round(e.max_response_time or 0, 1),
        }

    errors: dict[str, int] = {}
    for err in stats.errors.values():
        key = error_type(err.error)
        errors[key] = errors.get(key, 0) + err.occurrences
    error_ratio = total.num_failures / total.num_requests if total.num_requests else 1.0
    p99 = total.get_response_time_percentile(0.99) if total.num_requests else 0
    checks = [
        {
            "name": "error ratio",
            "value": round(error_ratio, 6),
            "limit": MAX_ERROR_RATIO,
            "ok": total.num_requests > 0 and error_ratio <= MAX_ERROR_RATIO,
        }
    ]
    if MAX_P99_MS > 0:
        checks.append(
            {"name": "p99 ms", "value": p99, "limit": MAX_P99_MS, "ok": p99 <= MAX_P99_MS}
        )
    options = environment.parsed_options
    return {
        "host": environment.host,
        "users": getattr(options, "num_users", None),
        "spawn_rate": getattr(options, "spawn_rate", None),
        "run_time": getattr(options, "run_time", None),
        "wait_seconds": [WAIT_MIN, WAIT_MAX],
        "batch_rows": BATCH_ROWS,
        "started": total.start_time,
        "ended": total.last_request_timestamp,
        "total": entry(total),
        "requests": [entry(e) for e in sorted(stats.entries.values(), key=lambda e: e.name)],
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "thresholds": checks,
        "passed": all(c["ok"] for c in checks),
    }


def format_summary(s: dict) -> str:
    """A fixed-width table for the terminal."""
    head = (
        f"{'request':28} {'reqs':>7} {'fails':>6} {'req/s':>8}"
        f" {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}"
    )
    lines = [
        f"ModelFleet load: {s['users']} users, run time {s['run_time']}s, target {s['host']}",
        head + "  (ms)",
        "-" * len(head),
    ]
    for e in [*s["requests"], None, s["total"]]:
        if e is None:
            lines.append("-" * len(head))
            continue
        name = "all requests" if e is s["total"] else e["name"]
        lines.append(
            f"{name[:28]:28} {e['requests']:7d} {e['failures']:6d} {e['rps']:8.1f}"
            f" {e['p50_ms']:6.0f} {e['p95_ms']:6.0f} {e['p99_ms']:6.0f} {e['max_ms']:7.0f}"
        )
    lines.append("errors by type:" + ("" if s["errors"] else " none"))
    lines += [f"  {n:7d}  {err}" for err, n in s["errors"].items()]
    verdicts = []
    for c in s["thresholds"]:
        value = f"{c['value']:.2%}" if c["name"] == "error ratio" else f"{c['value']:.0f}"
        limit = f"{c['limit']:.2%}" if c["name"] == "error ratio" else f"{c['limit']:.0f}"
        verdicts.append(f"{c['name']} {value} <= {limit}: {'ok' if c['ok'] else 'MISSED'}")
    lines.append("thresholds: " + "; ".join(verdicts))
    lines.append("result: " + ("PASS" if s["passed"] else "FAIL (a threshold was missed)"))
    return "\n".join(lines)


@events.quitting.add_listener
def _verdict(environment: Environment, **_: object) -> None:
    """Print the summary, write it as JSON, and fail the run when a threshold is missed."""
    if isinstance(environment.runner, WorkerRunner) or environment.process_exit_code == 2:
        return
    summary = summarize(environment)
    print(format_summary(summary), flush=True)
    path = os.environ.get("LOADGEN_SUMMARY")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    # Set either way: Locust's own rule (exit 1 on any failure) is replaced by the thresholds.
    environment.process_exit_code = 0 if summary["passed"] else 1
