"""No refusal is HTML: whoever answers (nginx's tiers, gunicorn, Flask), the body is JSON.

On the KServe V1 and OIP v2 routes the body is ``{"error": "<string>"}``; elsewhere
``{"error": {"code", "message"}}``. Raw sockets send what ``requests`` will not (TRACE, a
broken Transfer-Encoding, a malformed request line).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.stack.stackctl import Stack


def raw_request(stack: Stack, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes to the load balancer; return status, headers and body of the answer."""
    url = urlsplit(stack.lb_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["Content-Type"].startswith("application/json"), (status, body[:200])
    error = json.loads(body)["error"]
    assert error["code"] == code, error
    assert error["message"]


@pytest.mark.parametrize("path", ["/predict_data", "/v2/models/diabetes/infer"])
def test_uri_over_the_limit_is_414_json(stack: Stack, path: str) -> None:
    # The object shape even on /v2: nginx refuses the line before it has read the path.
    r = requests.get(f"{stack.lb_url}{path}?x={'a' * 20_000}", timeout=10)
    assert r.status_code == 414
    assert_json_error(r.status_code, r.headers, r.content, "uri_too_long")


def test_header_over_the_limit_is_431_json(stack: Stack) -> None:
    r = requests.get(stack.lb_url + stack.plumber_path, headers={"X-Big": "a" * 20_000}, timeout=10)
    assert r.status_code == 431
    assert_json_error(r.status_code, r.headers, r.content, "header_too_large")


def test_a_request_just_under_the_limits_reaches_a_replica(stack: Stack) -> None:
    # Just under nginx's 8 KiB request line and header line: gunicorn's limits are the same,
    # so the replica answers (here: a plumber refusal of an unknown parameter, in JSON).
    pad = "a" * (8000 - len(stack.plumber_path))
    r = requests.get(
        f"{stack.lb_url}{stack.plumber_path}&pad={pad}", headers={"X-Big": "b" * 8000}, timeout=10
    )
    assert "X-Served-By" in r.headers, r.content[:200]
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.status_code in (200, 400, 422)


def test_many_small_headers_reach_a_replica(stack: Stack) -> None:
    headers = {f"X-H{i}": "v" for i in range(300)}  # over gunicorn's default of 100 fields
    r = requests.get(stack.lb_url + stack.plumber_path, headers=headers, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"Answer": ["no"]}


def test_trace_is_405_json_with_allow(stack: Stack) -> None:
    status, headers, body = raw_request(
        stack, b"TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 405
    assert "POST" in headers["Allow"]
    assert_json_error(status, headers, body, "method_not_allowed")


def test_unknown_transfer_encoding_is_501_json(stack: Stack) -> None:
    status, headers, body = raw_request(
        stack,
        b"POST /models/diabetes/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status == 501
    assert_json_error(status, headers, body, "not_implemented")


def test_malformed_request_line_is_400_json(stack: Stack) -> None:
    status, headers, body = raw_request(stack, b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400
    assert_json_error(status, headers, body, "malformed_request")


def test_405_from_a_replica_names_the_allowed_methods(stack: Stack) -> None:
    r = requests.delete(stack.lb_url + "/models/diabetes/predict", timeout=10)
    assert r.status_code == 405
    assert r.headers["Allow"] == "OPTIONS, POST"
    assert_json_error(r.status_code, r.headers, r.content, "method_not_allowed")


def test_v2_body_too_large_is_a_string_error(stack: Stack) -> None:
    r = requests.post(
        stack.lb_url + "/v2/models/diabetes/infer", data=b"0" * (5 * 1024 * 1024), timeout=30
    )
    assert r.status_code == 413
    assert r.json()["error"].startswith("body_too_large: ")
