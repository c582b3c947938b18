"""Readiness and liveness on a port of their own, answered by one thread per gunicorn worker.

On the serving port, ``/readyz`` and ``/healthz`` are requests like any other: under overload
they wait in gunicorn's queue behind the predictions the worker's threads are running, so the
load balancer's one-second probe timed out exactly when the fleet was busiest. Here the gunicorn
master opens ``MODELFLEET_PROBE_PORT`` once (:func:`listen`), as it does the serving port, and
each worker answers probes on it from a thread of its own, outside the prediction pool
(:func:`serve`): a probe waits at most for the GIL, never for a prediction. The socket belongs
to the master, so while workers are replaced (recycling, a SIGHUP rollout) probes queue in its
backlog for the next worker instead of being refused; when the replica stops, they are refused.
The bodies are the serving port's (:func:`readiness`, one implementation).

http.server rather than a framework: a probe is one short GET, and this module must add no
dependency and no thread pool to a worker.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from model_server.core.registry import ModelRegistry

log = logging.getLogger(__name__)

#: Seconds between checks whether the worker is still alive (how long a stopping worker may
#: still answer probes).
POLL_SECONDS = 0.5


def readiness(
    registry: ModelRegistry, drain_file: Path | None = None
) -> tuple[dict[str, object], int]:
    """The readiness answer and its status: 200 once at least one model is ready, 503
    otherwise, or while ``drain_file`` exists (status ``draining``: ready, but asking the load
    balancer for no more requests); the details say which models are ready (their current
    version loaded), which are not, and which versions failed."""
    draining = registry.ready and drain_file is not None and drain_file.exists()
    body: dict[str, object] = {
        "status": "draining" if draining else "ready" if registry.ready else "not ready",
        "models": sorted(registry.models),
        "default_model": registry.default_model,
    }
    unready = sorted(set(registry.names) - set(registry.models))
    if unready:
        body["unready_models"] = unready
    if registry.failures:
        # <name>/<version> only: the reasons (paths, hashes) are in the log, not on the wire.
        body["failed_models"] = sorted(registry.failures)
    return body, 200 if registry.ready and not draining else 503


#: Liveness: the process is up and answering. Never depends on the models.
LIVE: tuple[dict[str, object], int] = ({"status": "ok"}, 200)


class _ProbeServer(HTTPServer):
    def __init__(self, registry: ModelRegistry, drain_file: Path | None) -> None:
        self.registry = registry
        self.drain_file = drain_file
        # The listening socket is the master's (set by serve): nothing to bind here.
        super().__init__(("", 0), _ProbeHandler, bind_and_activate=False)

    def handle_error(self, request: object, client_address: object) -> None:
        # upstream-sync reads a probe's status line and closes: the rest of the answer meets a
        # reset connection. That is its way, not an error worth socketserver's traceback.
        log.debug("probe from %s not answered in full", client_address, exc_info=True)


class _ProbeHandler(BaseHTTPRequestHandler):
    server: _ProbeServer
    # Answers carry Content-Length; one request per connection keeps the thread free.
    protocol_version = "HTTP/1.0"
    # A client that sends nothing cannot hold the thread.
    timeout = 2

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/readyz":
            body, status = readiness(self.server.registry, self.server.drain_file)
        elif path == "/healthz":
            body, status = LIVE
        else:
            body = {"error": {"code": "not_found", "message": "probe routes: /readyz, /healthz"}}
            status = 404
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every second would drown the log


def listen(host: str, port: int) -> int:
    """Open the probe port (in the gunicorn master, once) and return its file descriptor, which
    the workers inherit across fork."""
    sock = socket.create_server((host, port), backlog=128)
    return sock.detach()


def serve(
    registry: ModelRegistry,
    fd: int,
    alive: Callable[[], bool],
    drain_file: Path | None = None,
) -> threading.Thread:
    """Answer probes accepted on the listening socket ``fd`` from a daemon thread while
    ``alive()`` holds (readiness: :func:`readiness` with ``drain_file``). Returns the started
    thread. The socket stays open for the other workers and the master; this worker's own copy
    is closed when it stops."""
    server = _ProbeServer(registry, drain_file)
    server.socket.close()
    server.socket = socket.socket(fileno=os.dup(fd))
    # Every worker waits on the same socket: when another one took the connection, accept
    # gives up after POLL_SECONDS (socketserver then drops it) rather than blocking this thread
    # until the next probe. A timeout, not a non-blocking socket: handle_request waits at most
    # the socket's own timeout, and 0 made every idle worker spin (27% of a core each).
    server.socket.settimeout(POLL_SECONDS)
    server.timeout = POLL_SECONDS

    def run() -> None:
        try:
            while alive():
                server.handle_request()
        finally:
            server.server_close()

    thread = threading.Thread(target=run, name="probes", daemon=True)
    thread.start()
    return thread
