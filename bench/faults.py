"""The fault matrix of ``make chaos`` (issue #11): each fault is done to a running stack under
bounded client traffic, and comes back as one :class:`FaultResult` row.

Every function takes the stack and its size (the stack tests pass CI-sized numbers, ``make
chaos`` the full ones), restores what it changed, and measures from the client's side: requests
sent, answered, refused by design (a shed 503, the JSON 503 of an empty fleet, a 408), failed,
latencies, and the seconds the fleet took to recover. Faults act from the host (signals to the
containers' processes, iptables in the load balancer's network namespace), so they need root.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.fleet import (
    ACCESS_LOG_FLUSH_WAIT_S,
    Prober,
    Stack,
    containers,
    lb_exec,
    upstream_state,
    worker_pids,
)
from bench.traffic import (
    CLIENT_TIMEOUT,
    Load,
    LoadResult,
    batch_body,
    overload,
    percentile,
    shed_or_empty,
)

#: The workload of the overload rows: 1,000-row JSON batches to the boosted-tree model.
OVERLOAD_MODEL = "diabetes-gbt"
OVERLOAD_ROWS = 1000
JSON = {"Content-Type": "application/json"}
#: Issue #11's latency target for accepted requests under 5x overload: printed, not asserted.
OVERLOAD_P99_TARGET_S = 0.25
#: Bodies from this size on are "large" for the load balancer (nginx/balancer.conf's map).
LARGE_BODY_BYTES = 100_000


@dataclass
class FaultResult:
    """One row of the chaos table. ``problems`` are what breaks the fault's promise besides the
    failed requests (a restart, a probe that failed, a request that reached a replica)."""

    fault: str
    sent: int
    ok: int
    refused: int
    failed: int
    p99_s: float
    max_s: float
    recover_s: float | None
    allowed_failures: int = 0
    note: str = ""
    failures: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.failed <= self.allowed_failures and not self.problems


def from_load(fault: str, result: LoadResult, recover_s: float | None, **kw: Any) -> FaultResult:
    """A row from what :class:`bench.traffic.Load` saw."""
    return FaultResult(
        fault=fault,
        sent=result.total,
        ok=result.ok,
        refused=sum(result.refused.values()),
        failed=result.failed,
        p99_s=result.percentile(0.99),
        max_s=max(result.seconds, default=float("nan")),
        recover_s=recover_s,
        failures=dict(result.failures),
        **kw,
    )


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds passed; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def service_env(stack: Stack, name: str, service: str = "model") -> str | None:
    """A setting as the service's first running container got it (its environment), or None."""
    env = stack.inspect(stack.container_ids(service)[:1])[0]["Config"]["Env"]
    return dict(e.split("=", 1) for e in env).get(name)


def replica_env(stack: Stack, name: str) -> str:
    """A setting as the first running replica got it; KeyError if it has none."""
    value = service_env(stack, name)
    if value is None:
        raise KeyError(name)
    return value


def admission(stack: Stack, large: bool = False) -> int:
    """Requests the fleet admits at once: the sum of the ``max_conns`` upstream-sync rendered
    for the replicas in the balancer's upstream (the ``model_large`` group's for ``large``
    bodies of 100,000 bytes and more), so its rules stay the one place for the defaults. A
    replica without ``max_conns`` (admission off) counts what it runs at once, workers x
    threads."""
    name = "upstream-large.conf" if large else "upstream.conf"
    total = uncapped = 0
    for line in lb_exec(stack, f"cat /run/nginx/{name}").splitlines():
        words = line.rstrip(";").split()
        if words[:1] != ["server"] or "down" in words:
            continue
        caps = [int(w.split("=", 1)[1]) for w in words if w.startswith("max_conns=")]
        total += caps[0] if caps else 0
        uncapped += not caps
    if uncapped:  # only then are the replicas' settings worth two `docker inspect`s
        workers = int(replica_env(stack, "MODELFLEET_WORKERS"))
        total += uncapped * workers * int(replica_env(stack, "MODELFLEET_THREADS"))
    return total


def signal_replica(stack: Stack, sig: signal.Signals, threads: int = 4) -> FaultResult:
    """Send ``sig`` to one replica's init from the host (a crash for SIGKILL, a stop from
    outside for SIGTERM, neither a `docker stop`), so its restart policy brings it back."""
    n = len(stack.container_ids())
    victim = stack.container_ids()[0]
    info = stack.inspect([victim])[0]
    restarts = info["RestartCount"]

    def back() -> bool:
        state = stack.inspect([victim])[0]
        healthy = state["State"].get("Health", {}).get("Status") == "healthy"
        return bool(state["RestartCount"] > restarts and healthy)

    with Load(stack.lb_url, threads=threads, max_requests=100_000, max_seconds=150) as load:
        time.sleep(2)
        os.kill(info["State"]["Pid"], sig)
        started = time.monotonic()
        restarted = wait_until(back, timeout=90)
        stack.wait_for_replicas(n, timeout=30)
        recover = time.monotonic() - started
        time.sleep(2)
    problems = [] if restarted else ["the replica was not restarted and healthy within 90 s"]
    return from_load(
        f"replica {sig.name}",
        load.result,
        recover,
        problems=problems,
        note=f"restarted by its policy, serving again after {recover:.0f} s",
        details={"restarted": restarted, "victim": info["Config"]["Hostname"]},
    )


def hung_worker(stack: Stack, threads: int = 8, requests_total: int = 320) -> FaultResult:
    """SIGSTOP one gunicorn worker: its requests miss the load balancer's deadline and are
    retried elsewhere; gunicorn replaces the worker. At most one client-visible failure."""
    since = time.time()
    container = stack.container_ids()[0]
    hung = worker_pids(stack, container)[0]
    replaced_after = None
    # The load starts first: it reads the served models through the load balancer as it
    # starts, and that read must not be the request that waits for the deadline.
    with Load(stack.lb_url, threads=threads, max_requests=requests_total, max_seconds=120) as load:
        os.kill(hung, signal.SIGSTOP)
        started = time.monotonic()
        try:
            replaced = wait_until(lambda: stack.log_count("WORKER TIMEOUT", since) > 0, 60, 1)
            if replaced:
                replaced_after = time.monotonic() - started
            while load.result.total < requests_total and time.monotonic() - started < 120:
                time.sleep(0.5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGCONT)
    gone = hung not in worker_pids(stack, container)
    problems = [] if replaced_after is not None and gone else ["the hung worker was not replaced"]
    return from_load(
        "hung worker (SIGSTOP)",
        load.result,
        replaced_after,
        allowed_failures=1,
        problems=problems,
        note="retried on another replica at the deadline; worker replaced by gunicorn",
        details={"replaced": gone},
    )


def _lb_iptables(stack: Stack, *rule: str) -> None:
    """iptables in the load balancer container's network namespace (its image has none)."""
    pid = stack.inspect(stack.container_ids("lb"))[0]["State"]["Pid"]
    subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "iptables", "-w", *rule],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def dns_failure(stack: Stack, seconds: float = 12, threads: int = 4) -> FaultResult:
    """Drop every packet to Docker's embedded DNS (127.0.0.11) from the load balancer for
    ``seconds``: upstream-sync's lookups fail, and it must keep the replicas it has."""
    n = len(stack.container_ids())
    rule = ("OUTPUT", "-d", "127.0.0.11", "-j", "DROP")
    before = upstream_state(stack)
    with Load(
        stack.lb_url, threads=threads, max_requests=100_000, max_seconds=seconds + 90
    ) as load:
        time.sleep(2)
        _lb_iptables(stack, "-I", *rule)
        try:
            time.sleep(seconds)
        finally:
            _lb_iptables(stack, "-D", *rule)
        healed = time.monotonic()
        failures_then = upstream_state(stack)["modelfleet_upstream_lookup_failures_total"]

        def resolving() -> bool:
            state = upstream_state(stack)
            return (
                state["modelfleet_upstream_resolved_replicas"] == n
                and state["modelfleet_upstream_sync_timestamp_seconds"] > time.time() - 1
                and state["modelfleet_upstream_lookup_failures_total"] >= failures_then
            )

        wait_until(resolving, timeout=60)
        recover = time.monotonic() - healed
        time.sleep(1)
    after = upstream_state(stack)
    failed_lookups = int(
        after["modelfleet_upstream_lookup_failures_total"]
        - before["modelfleet_upstream_lookup_failures_total"]
    )
    changed = (
        after["modelfleet_upstream_last_change_timestamp_seconds"]
        != before["modelfleet_upstream_last_change_timestamp_seconds"]
    )
    problems = []
    if failed_lookups == 0:
        problems.append("no lookup failed: the fault did not take")
    if changed or after["modelfleet_upstream_replicas"] != n:
        problems.append("the upstream changed during the DNS failure")
    return from_load(
        f"DNS failure {seconds:.0f} s",
        load.result,
        recover,
        problems=problems,
        note=f"{failed_lookups} lookups failed; upstream kept {n} replicas"
        if not changed
        else "upstream changed",
        details={"failed_lookups": failed_lookups, "upstream_changed": changed},
    )


def accepted_p99_at_the_lb(stack: Stack, since: float, url: str) -> float:
    """The p99 of the balancer tier's ``request_time`` of the 200s to ``url``'s path since
    ``since``; NaN without any. It runs from the front tier passing on the request (its body
    already buffered there) to the answer's last byte: the front tier's own time is not in it
    (that tier logs only what it answers itself). The issue's latency target is judged on this
    figure: the clients' own p99 also holds their waits for the two cores and their GIL (up to
    ~190 ms, measured on answers the load balancer sheds at once)."""
    time.sleep(ACCESS_LOG_FLUSH_WAIT_S)
    path = urlsplit(url).path
    times = [
        float(e["request_time"])
        for e in stack.access_log(since)
        if e.get("uri") == path and e.get("status") == 200
    ]
    return percentile(times, 0.99)


def overload_fault(stack: Stack, factor: float, seconds: float = 20) -> FaultResult:
    """``factor`` x the fleet's admission in closed-loop clients posting 1,000-row batches to
    diabetes-gbt: the excess is shed (JSON 503, Retry-After), probes keep answering, the
    upstream does not change, nothing restarts. Factor 1 measures the capacity."""
    body = batch_body(stack.lb_url, OVERLOAD_MODEL, OVERLOAD_ROWS)
    clients = max(1, round(factor * admission(stack, large=len(body) >= LARGE_BODY_BYTES)))
    url = f"{stack.lb_url}/models/{OVERLOAD_MODEL}/predict"
    state_before = upstream_state(stack)
    containers_before = containers(stack)
    since = time.time()
    with Prober(stack) as prober:
        result = overload(url, body, clients=clients, seconds=seconds)
    lb_p99 = accepted_p99_at_the_lb(stack, since, url)
    problems = []
    if prober.results["fail"]:
        problems.append(f"readiness probes failed: {dict(prober.results)}")
    state_after = upstream_state(stack)
    if (
        state_after["modelfleet_upstream_last_change_timestamp_seconds"]
        != state_before["modelfleet_upstream_last_change_timestamp_seconds"]
    ):
        problems.append("the upstream was rewritten")
    if containers(stack) != containers_before:
        problems.append("a container restarted or was OOM-killed")
    started = time.monotonic()
    recovered = wait_until(lambda: set(stack.plumber_statuses(10)) == {200}, 30)
    accepted = result.statuses[200]
    malformed = sum(result.malformed.values())
    rate = accepted / seconds
    p99 = result.percentile(0.99)
    verdict = "met" if lb_p99 <= OVERLOAD_P99_TARGET_S else "MISSED"
    return FaultResult(
        fault=f"{factor:g}x capacity ({clients} clients)",
        sent=result.total,
        ok=accepted,
        refused=result.total - accepted - malformed,
        failed=malformed,
        p99_s=p99,
        max_s=max(result.accepted_seconds, default=float("nan")),
        recover_s=time.monotonic() - started if recovered else None,
        failures=dict(result.malformed),
        problems=problems,
        note=f"{OVERLOAD_ROWS}-row {OVERLOAD_MODEL} batches: {rate:.0f} accepted/s; "
        f"shed p99 {result.percentile(0.99, shed=True) * 1000:.0f} ms; probes "
        f"{dict(prober.results)}; accepted p99 at the LB {lb_p99 * 1000:.0f} ms "
        f"<= {OVERLOAD_P99_TARGET_S * 1000:.0f} ms: {verdict}",
        details={"accepted_per_s": rate, "probes": dict(prober.results), "lb_p99_s": lb_p99},
    )


def slow_headers(stack: Stack, connections: int = 200, seconds: float = 15) -> FaultResult:
    """``connections`` clients that send their headers one line a second and never finish
    (slowloris). The load balancer closes them at its header timeout; plumber GETs beside them
    keep being answered at once."""
    port = int(stack.lb_url.rsplit(":", 1)[1])
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /models HTTP/1.1\r\nHost: chaos\r\n")
        socks.append(s)
    opened = time.monotonic()
    closed_after: list[float] = []
    probe_seconds: list[float] = []
    statuses: Counter = Counter()
    stop = threading.Event()

    def probe() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.monotonic()
                status: int | str
                try:
                    status = session.get(stack.lb_url + stack.plumber_path, timeout=10).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                probe_seconds.append(time.monotonic() - started)
                statuses[status] += 1
                stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        while socks and time.monotonic() - opened < seconds:
            readable, _, _ = select.select(socks, [], [], 1.0)
            for s in readable:  # the server answered or closed: the client was given up
                closed_after.append(time.monotonic() - opened)
                socks.remove(s)
                s.close()
            for s in list(socks):
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    closed_after.append(time.monotonic() - opened)
                    socks.remove(s)
                    s.close()
    finally:
        stop.set()
        prober.join(timeout=15)
        for s in socks:
            s.close()
    failed = sum(v for k, v in statuses.items() if k != 200)
    slow = sum(1 for t in probe_seconds if t > 0.1)
    problems = [] if not socks else [f"{len(socks)} slow clients still open after {seconds:.0f} s"]
    return FaultResult(
        fault=f"{connections} slow-header clients",
        sent=len(probe_seconds),
        ok=statuses[200],
        refused=0,
        failed=failed,
        p99_s=percentile(probe_seconds, 0.99),
        max_s=max(probe_seconds, default=float("nan")),
        recover_s=max(closed_after, default=None),
        failures={str(k): v for k, v in statuses.items() if k != 200},
        problems=problems,
        note=f"{len(closed_after)} of {connections} closed by the LB; {slow} probes over 100 ms",
        details={"closed": len(closed_after), "probes_over_100ms": slow},
    )


def stalled_body(stack: Stack, connections: int = 4, timeout: float = 20) -> FaultResult:
    """POSTs that promise 1,000 bytes, send 100 and stall: the load balancer gives up on each
    within its body timeout (10 s), and none reaches a replica (its request id appears in no
    proxied log line)."""
    port = int(stack.lb_url.rsplit(":", 1)[1])
    ids = [f"chaos-stalled-{uuid.uuid4().hex}" for _ in range(connections)]
    socks = []
    for request_id in ids:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(
            b"POST /models/diabetes/predict HTTP/1.1\r\nHost: chaos\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            + f"X-Request-ID: {request_id}\r\n\r\n".encode()
            + b"[" + b" " * 99
        )  # fmt: skip
        socks.append(s)
    opened = time.monotonic()
    closed_after: list[float] = []
    answers: Counter = Counter()
    for s in socks:
        left = max(0.1, timeout - (time.monotonic() - opened))
        s.settimeout(left)
        try:
            head = s.recv(4096)
            closed_after.append(time.monotonic() - opened)
            answers[head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"] += 1
        except (TimeoutError, OSError):
            answers["still open"] += 1
        finally:
            s.close()
    time.sleep(ACCESS_LOG_FLUSH_WAIT_S)
    logs = stack.compose("logs", "--no-color", "lb", capture=True, check=False)
    reached = [
        i
        for i in ids
        for line in logs.splitlines()
        if i in line and '"upstream_addr":""' not in line
    ]
    problems = [f"{len(reached)} stalled requests reached a replica"] if reached else []
    failed = answers["still open"]
    return FaultResult(
        fault=f"{connections} stalled bodies",
        sent=connections,
        ok=0,
        refused=connections - failed,
        failed=failed,
        p99_s=percentile(closed_after, 0.99),
        max_s=max(closed_after, default=float("nan")),
        recover_s=max(closed_after, default=None),
        failures={"still open": failed} if failed else {},
        problems=problems,
        note=f"answers {dict(answers)}; none reached a replica" if not reached else "",
        details={"answers": dict(answers), "reached": reached},
    )


def scale_to_zero(stack: Stack, empty_seconds: float = 5, threads: int = 4) -> FaultResult:
    """Scale the replicas to 0 under traffic, then back: while the fleet is empty every request
    gets the load balancer's JSON 503 at once; nothing else fails."""
    n = len(stack.container_ids())
    with Load(
        stack.lb_url, threads=threads, max_requests=200_000, max_seconds=300, refusal=shed_or_empty
    ) as load:
        time.sleep(2)
        stack.scale(0)
        time.sleep(empty_seconds)
        empty = requests.get(stack.lb_url + stack.plumber_path, timeout=10)
        started = time.monotonic()
        stack.scale(n)
        stack.wait_for_replicas(n, timeout=120)
        recover = time.monotonic() - started
        time.sleep(2)
    problems = []
    if shed_or_empty(empty) is None:
        problems.append(f"an empty fleet answered {empty.status_code} {empty.text[:80]!r}")
    return from_load(
        f"scale {n} -> 0 -> {n}",
        load.result,
        recover,
        problems=problems,
        note=f"while empty: {empty.status_code} {shed_or_empty(empty) or ''}; "
        f"back to {n} replicas in {recover:.0f} s",
        details={"empty_answer": empty.status_code},
    )


def large_bodies(stack: Stack, parallel: int = 16, rounds: int = 3) -> FaultResult:
    """``parallel`` clients at once, each posting bodies of the largest accepted size (the
    replicas' MODELFLEET_MAX_BODY_BYTES, which nginx also enforces): 10,000 diabetes rows,
    padded with JSON whitespace. The load balancer's temporary space must hold them all."""
    limit = int(replica_env(stack, "MODELFLEET_MAX_BODY_BYTES"))
    rows = int(replica_env(stack, "MODELFLEET_MAX_ROWS"))
    body = batch_body(stack.lb_url, "diabetes", rows)
    body = body + b" " * max(0, limit - len(body) - 64)
    url = f"{stack.lb_url}/models/diabetes/predict"
    seconds: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as s:
            for _ in range(rounds):
                started = time.monotonic()
                try:
                    r = s.post(url, data=body, headers=JSON, timeout=CLIENT_TIMEOUT)
                    status: int | str = r.status_code
                    if status == 503 and shed_or_empty(r):
                        status = "shed"
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with lock:
                    seconds.append(time.monotonic() - started)
                    statuses[status] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=rounds * (CLIENT_TIMEOUT + 5))
    failed = sum(v for k, v in statuses.items() if k not in (200, "shed"))
    return FaultResult(
        fault=f"{parallel} parallel {len(body) / 2**20:.1f} MiB bodies",
        sent=sum(statuses.values()),
        ok=statuses[200],
        refused=statuses["shed"],
        failed=failed,
        p99_s=percentile(seconds, 0.99),
        max_s=max(seconds, default=float("nan")),
        recover_s=None,
        failures={str(k): v for k, v in statuses.items() if k not in (200, "shed")},
        note=f"{rows:,} rows each, {len(body):,} bytes",
        details={"statuses": dict(statuses)},
    )
