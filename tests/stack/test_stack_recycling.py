"""Workers are recycled after a bounded number of requests, and no request fails for it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.stack.stackctl import Stack

#: Bounds of the load below: enough for several workers to reach their 1,000-1,200 requests
#: (conftest.py), never more.
MAX_REQUESTS = 16_000
MAX_SECONDS = 90
BATCH = 800


def _recycles(stack: Stack) -> int:
    logs = stack.compose("logs", "--no-color", "model", capture=True, check=False)
    return logs.count("Autorestarting worker after current request")


def _send(stack: Stack, n: int) -> list[int]:
    """``n`` plumber GETs over one keep-alive session; the statuses (0: connection error)."""
    statuses = []
    with requests.Session() as s:
        for _ in range(n):
            try:
                statuses.append(s.get(stack.lb_url + stack.plumber_path, timeout=10).status_code)
            except requests.RequestException:
                statuses.append(0)
    return statuses


def test_recycled_workers_fail_no_request(stack: Stack) -> None:
    before = _recycles(stack)
    sent: list[int] = []
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        while len(sent) < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
            for statuses in pool.map(lambda _: _send(stack, BATCH // 8), range(8)):
                sent.extend(statuses)
            if _recycles(stack) >= before + 2:
                break
    failed = [s for s in sent if s != 200]
    assert _recycles(stack) >= before + 2, f"no worker was recycled in {len(sent)} requests"
    assert failed == [], f"{len(failed)} of {len(sent)} requests failed: {sorted(set(failed))}"
