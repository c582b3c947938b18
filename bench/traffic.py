"""Bounded client traffic through a stack's load balancer, for the stack tests and ``make chaos``.

Two shapes: :class:`Load`, steady keep-alive traffic (plumber GETs and JSON POSTs to the default
model) that runs while something else happens to the fleet, and :func:`overload`, closed-loop
clients with no think time posting one body. Both are bounded in requests and in seconds, so a
failing caller can never leave traffic running, and both keep every latency for percentiles.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from bench import models

#: The JSON record the bounded load posts to the diabetes model (features from GET /models).
LOAD_VALUES = (1, 148, 72)
#: A client's patience for one request: above the load balancer's budget for a request retried
#: after a missed deadline (10 s, then another replica), so such a request counts as late, not
#: failed.
CLIENT_TIMEOUT = 30.0

#: Decides what an answer other than 200 is: a reason it is a designed refusal (a shed 503,
#: the JSON 503 of an empty fleet), or None when it is a failure.
Refusal = Callable[[requests.Response], str | None]


def batch_body(base_url: str, model: str, rows: int) -> bytes:
    """``rows`` JSON records of the model's training data (the vendored CSV its manifest names,
    cycled), its features named as the stack at ``base_url`` serves them."""
    features = models.served_features(base_url)[model]
    manifest = requests.get(f"{base_url}/models/{model}", timeout=10).json()
    return json.dumps(models.data_rows(manifest["training_data"]["file"], features, rows)).encode()


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` (nearest rank), NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def error_code(r: requests.Response) -> str | None:
    """The ``error.code`` of a JSON error answer, or None when the body is not one."""
    try:
        code = r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def shed_answer_problem(r: requests.Response) -> str | None:
    """Why a 503 is not the load balancer's shed answer (JSON code ``overloaded`` with
    ``Retry-After: 1``), or None when it is."""
    if r.headers.get("Retry-After") != "1":
        return "503 without Retry-After: 1"
    code = error_code(r)
    if code is None:
        return "503 not JSON in the error shape"
    return None if code == "overloaded" else f"503 {code}"


def shed_or_empty(r: requests.Response) -> str | None:
    """A :data:`Refusal` accepting the JSON 503s of a fleet that is full or has no replica."""
    if r.status_code == 503 and error_code(r) in ("overloaded", "unavailable"):
        return f"503 {error_code(r)}"
    return None


@dataclass
class LoadResult:
    """What a bounded load run saw: answers, designed refusals, failures, latencies."""

    ok: int = 0
    failed: int = 0
    refused: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    served_by: Counter = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    #: When each failure was seen (time.monotonic()), to tell when failures stopped.
    failed_at: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + self.failed + sum(self.refused.values())

    def percentile(self, q: float) -> float:
        """The q-quantile of every request's latency in seconds (answered or not)."""
        return percentile(self.seconds, q)


class Load:
    """Bounded concurrent GET and POST traffic through the load balancer.

    Runs in threads until stopped, `max_requests` were sent or `max_seconds` passed, whichever
    comes first. An answer other than 200 is a failure unless ``refusal`` names it a designed
    refusal. With ``rate``, the threads together send at most that many requests a second
    (each thread its share, on a fixed schedule, so a slow answer is not made up for later).
    """

    def __init__(
        self,
        base_url: str,
        threads: int = 4,
        max_requests: int = 50_000,
        max_seconds: float = 120,
        refusal: Refusal | None = None,
        rate: float | None = None,
    ) -> None:
        self.base_url = base_url
        #: Requests a second over all threads (None: as fast as answers come).
        self.rate = rate
        self.threads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.refusal = refusal
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._plumber_path = ""
        self._record: dict[str, Any] = {}

    def _one(self, session: requests.Session, i: int) -> None:
        started = time.monotonic()
        refused = None
        try:
            if i % 2:
                r = session.get(self.base_url + self._plumber_path, timeout=CLIENT_TIMEOUT)
            else:
                r = session.post(
                    self.base_url + "/models/diabetes/predict",
                    json=self._record,
                    timeout=CLIENT_TIMEOUT,
                )
            ok = r.status_code == 200
            why = f"HTTP {r.status_code}"
            served = r.headers.get("X-Served-By", "?")
            if not ok and self.refusal is not None:
                refused = self.refusal(r)
        except requests.RequestException as exc:
            ok, why, served = False, type(exc).__name__, "-"
        elapsed = time.monotonic() - started
        with self._lock:
            self.result.seconds.append(elapsed)
            if ok:
                self.result.ok += 1
                self.result.served_by[served] += 1
            elif refused:
                self.result.refused[refused] += 1
            else:
                self.result.failed += 1
                self.result.failures[why] += 1
                self.result.failed_at.append(started + elapsed)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        interval = self.threads / self.rate if self.rate else 0.0
        next_send = time.monotonic()
        with requests.Session() as session:
            i = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.result.total >= self.max_requests:
                        return
                self._one(session, i)
                i += 1
                if interval:
                    next_send = max(next_send + interval, time.monotonic() - interval)
                    self._stop.wait(max(0.0, next_send - time.monotonic()))

    def __enter__(self) -> Load:
        self._plumber_path = models.plumber_path(self.base_url)
        features = models.served_features(self.base_url)["diabetes"]
        self._record = models.record(features, LOAD_VALUES)
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=CLIENT_TIMEOUT + 5)


@dataclass
class OverloadResult:
    """What a bounded overload run saw: statuses, latencies of the accepted requests, and the
    answers that were neither a 200 nor a well-formed shed answer."""

    statuses: Counter = field(default_factory=Counter)
    accepted_seconds: list[float] = field(default_factory=list)
    shed_seconds: list[float] = field(default_factory=list)
    malformed: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float, shed: bool = False) -> float:
        """The q-quantile (0..1) of the accepted (or shed) requests' latencies, in seconds."""
        return percentile(self.shed_seconds if shed else self.accepted_seconds, q)


def overload(
    url: str, body: bytes, clients: int, seconds: float, max_requests: int = 20_000
) -> OverloadResult:
    """POST ``body`` (JSON) to ``url`` from ``clients`` threads, each with its own keep-alive
    session and no think time, for ``seconds`` (and at most ``max_requests`` in all)."""
    result = OverloadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        with requests.Session() as s:
            while time.monotonic() < deadline:
                with lock:
                    if result.total >= max_requests:
                        return
                started = time.monotonic()
                try:
                    r = s.post(url, data=body, headers=headers, timeout=CLIENT_TIMEOUT)
                    status, problem = r.status_code, None
                    if status == 503:
                        problem = shed_answer_problem(r)
                    elif status != 200:
                        problem = f"HTTP {status} {r.headers.get('Content-Type')}"
                except requests.RequestException as exc:
                    status, problem = 0, type(exc).__name__
                elapsed = time.monotonic() - started
                with lock:
                    result.statuses[status] += 1
                    if status == 200:
                        result.accepted_seconds.append(elapsed)
                    elif status == 503:
                        result.shed_seconds.append(elapsed)
                    if problem:
                        result.malformed[problem] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + CLIENT_TIMEOUT + 30)
    return result
