"""Faults cost no request: a hung worker is given up at the load balancer's deadline and
replaced by gunicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from tests.stack.stackctl import Stack, worker_pids

CLIENTS = 8
REQUESTS_PER_CLIENT = 40  # bounded: 320 requests, each at most one deadline (10 s) late


def test_a_hung_worker_costs_no_request_and_is_replaced(three_replicas: Stack) -> None:
    stack = three_replicas
    started = time.time()
    container = stack.container_ids()[0]
    hung = worker_pids(stack, container)[0]
    os.kill(hung, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [
                s
                for c in pool.map(
                    lambda _: stack.plumber_statuses(REQUESTS_PER_CLIENT), range(CLIENTS)
                )
                for s in c
            ]
        deadline = time.monotonic() + 40
        while not stack.log_count("WORKER TIMEOUT", started) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    failed = [s for s in statuses if s != 200]
    assert failed == [], f"{len(failed)} of {len(statuses)} requests failed: {sorted(set(failed))}"
    assert stack.log_count("WORKER TIMEOUT", started), "gunicorn did not replace the hung worker"
    assert hung not in worker_pids(stack, container)
