"""Helpers for the bench toolkit's tests: a tiny real HTTP server on 127.0.0.1 (canned answers
per path, every request recorded), a stand-in for wrk, and ``make bench``'s entry point run
in-process."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: A canned answer: (status, JSON body) or (status, JSON body, headers), or a callable giving
#: one afresh for each request.
Answer = tuple[Any, ...] | Callable[[], tuple[Any, ...]]


@contextmanager
def serve(routes: dict[str, Answer]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(base URL, requests seen): a GET or POST to ``path`` is answered ``routes[path]``."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append({"path": url.path, "query": parse_qs(url.query), "method": self.command,
                         "body": body})  # fmt: skip
            answer = routes.get(url.path, (404, {"error": "not found"}))
            status, payload, *headers = answer() if callable(answer) else answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers[0] if headers else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fake_wrk(directory: Path) -> Path:
    """An executable ``wrk`` in ``directory`` that reports 2000 requests in one second (p50
    500 us, p99 900 us) for every run, as the real one's Lua script prints it."""
    from bench.wrk import FIELDS

    raw = dict.fromkeys(FIELDS, 0)
    raw.update(requests=2000, duration_us=1_000_000, latency_p50_us=500, latency_p99_us=900)
    exe = directory / "wrk"
    exe.write_text(f"#!/bin/sh\necho 'BENCH_RESULT {json.dumps(raw)}'\n")
    exe.chmod(0o755)
    return exe


def run_bench(argv: list[str]) -> int:
    """``bench.run.main(argv)``, with the SIGTERM handler it installs restored afterwards."""
    import bench.run

    handler = signal.getsignal(signal.SIGTERM)
    try:
        return bench.run.main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)
