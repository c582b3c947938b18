"""Workers are recycled after a bounded number of requests, and no request fails for it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.stack.stackctl import Stack

#: Bounds of the load below: enough for several workers to reach their 3,000-4,000 requests
#: (conftest.py), never more.
MAX_REQUESTS = 30_000
MAX_SECONDS = 150
BATCH = 800


RECYCLED = "Autorestarting worker after current request"


def test_recycled_workers_fail_no_request(stack: Stack) -> None:
    since = time.time()
    sent: list[int] = []
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        while len(sent) < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
            for statuses in pool.map(lambda _: stack.plumber_statuses(BATCH // 8), range(8)):
                sent.extend(statuses)
            if stack.log_count(RECYCLED, since) >= 2:
                break
    failed = [s for s in sent if s != 200]
    assert stack.log_count(RECYCLED, since) >= 2, f"no worker was recycled in {len(sent)} requests"
    assert failed == [], f"{len(failed)} of {len(sent)} requests failed: {sorted(set(failed))}"
