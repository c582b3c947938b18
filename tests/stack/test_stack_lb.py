"""The load balancer is the one public entry and spreads traffic over every replica."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.stack.stackctl import Stack

NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def test_plumber_query_answers_exactly_as_the_book(stack: Stack, http: requests.Session) -> None:
    r = http.get(stack.lb_url + stack.plumber_path, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.content.strip() == b'{"Answer":["no"]}'


def test_sixty_requests_are_answered_by_all_three_replicas(three_replicas: Stack) -> None:
    seen: dict[str, int] = {}
    with requests.Session() as s:
        for _ in range(60):
            r = s.get(three_replicas.lb_url + three_replicas.plumber_path, timeout=5)
            assert r.status_code == 200
            served = r.headers["X-Served-By"]
            seen[served] = seen.get(served, 0) + 1
    assert set(seen) == three_replicas.replica_hostnames()
    assert len(seen) == 3


def test_request_id_is_generated_when_absent_and_kept_when_sent(
    stack: Stack, http: requests.Session
) -> None:
    generated = http.get(stack.lb_url + stack.plumber_path, timeout=5).headers["X-Request-ID"]
    assert len(generated) == 32
    sent = http.get(
        stack.lb_url + stack.plumber_path, headers={"X-Request-ID": "test-req-42"}, timeout=5
    )
    assert sent.headers["X-Request-ID"] == "test-req-42"


@pytest.mark.parametrize("sent", ["a" * 128, "A-z.0_9:x", "1"])
def test_a_safe_request_id_is_kept(stack: Stack, http: requests.Session, sent: str) -> None:
    r = http.get(stack.lb_url + stack.plumber_path, headers={"X-Request-ID": sent}, timeout=5)
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 129, "a b", "a;b", 'a"b', "a/b", "a,b", "é".encode(), b"\x01", "{x}"],
    ids=[
        "129-chars",
        "space",
        "semicolon",
        "quote",
        "slash",
        "comma",
        "non-ascii",
        "ctl",
        "braces",
    ],
)
@pytest.mark.parametrize("path", ["plumber", "/metrics"], ids=["proxied", "answered-by-nginx"])
def test_an_unsafe_request_id_is_replaced_at_the_edge(
    stack: Stack, http: requests.Session, sent: str | bytes, path: str
) -> None:
    # The same rule as the model server's REQUEST_ID_RE: anything else is nginx's own id, in the
    # response, in what the replica receives and in the access log.
    path = stack.plumber_path if path == "plumber" else path
    r = http.get(stack.lb_url + path, headers={"X-Request-ID": sent}, timeout=5)
    assert r.status_code in (200, 404)
    assert NGINX_REQUEST_ID.fullmatch(r.headers["X-Request-ID"]), r.headers["X-Request-ID"]


def test_the_sanitised_request_id_is_what_the_replica_gets_and_the_log_shows(
    stack: Stack, http: requests.Session
) -> None:
    r = http.get(stack.lb_url + stack.plumber_path, headers={"X-Request-ID": "bad id"}, timeout=5)
    answered = r.headers["X-Request-ID"]
    assert NGINX_REQUEST_ID.fullmatch(answered)
    # The balancer tier logs the id it received from the front tier, which the replica then
    # gets too; its access log is flushed at least once a second.
    deadline = time.monotonic() + 10
    while True:
        entries = stack.access_log()
        mine = [e for e in entries if e.get("request_id") == answered]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert mine and mine[0]["upstream_addr"], "the proxied request is not logged under its id"
    assert not any(e.get("request_id") == "bad id" for e in entries)


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
