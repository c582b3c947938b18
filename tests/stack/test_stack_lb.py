"""The load balancer is the one public entry and spreads traffic over every replica."""

from __future__ import annotations

import requests

from tests.stack.stackctl import PLUMBER_PATH, Stack


def test_plumber_query_answers_exactly_as_the_book(stack: Stack, http: requests.Session) -> None:
    r = http.get(stack.lb_url + PLUMBER_PATH, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.content.strip() == b'{"Answer":["no"]}'


def test_sixty_requests_are_answered_by_all_three_replicas(three_replicas: Stack) -> None:
    seen: dict[str, int] = {}
    with requests.Session() as s:
        for _ in range(60):
            r = s.get(three_replicas.lb_url + PLUMBER_PATH, timeout=5)
            assert r.status_code == 200
            served = r.headers["X-Served-By"]
            seen[served] = seen.get(served, 0) + 1
    assert set(seen) == three_replicas.replica_hostnames()
    assert len(seen) == 3


def test_request_id_is_generated_when_absent_and_kept_when_sent(
    stack: Stack, http: requests.Session
) -> None:
    generated = http.get(stack.lb_url + PLUMBER_PATH, timeout=5).headers["X-Request-ID"]
    assert len(generated) == 32
    sent = http.get(stack.lb_url + PLUMBER_PATH, headers={"X-Request-ID": "test-req-42"}, timeout=5)
    assert sent.headers["X-Request-ID"] == "test-req-42"


def test_internal_endpoints_are_not_reachable_through_the_load_balancer(
    stack: Stack, http: requests.Session
) -> None:
    for path in ("/metrics", "/metrics/", "/healthz", "/readyz"):
        r = http.get(stack.lb_url + path, timeout=5)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"


def test_oversized_body_is_refused_by_the_load_balancer(
    stack: Stack, http: requests.Session
) -> None:
    body = b"1,2,3\n" * (5 * 1024 * 1024 // 6)
    r = http.post(
        stack.lb_url + "/models/diabetes/predict",
        data=body,
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
