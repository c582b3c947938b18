"""model_server/probes.py: readiness and liveness on their own port, from a worker's thread,
with the serving port's answers."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from model_server import probes
from model_server.core.registry import ModelRegistry


def listening() -> tuple[int, int]:
    """A probe port on 127.0.0.1 as the gunicorn master opens it: (port, descriptor)."""
    fd = probes.listen("127.0.0.1", 0)
    with socket.socket(fileno=os.dup(fd)) as s:
        return int(s.getsockname()[1]), fd


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Flag:
    """A worker's ``alive`` flag."""

    def __init__(self) -> None:
        self.alive = True

    def __call__(self) -> bool:
        return self.alive


@pytest.fixture
def serving(app: Flask) -> Iterator[tuple[int, Flag, ModelRegistry]]:
    registry = app.extensions["modelfleet"].registry
    (port, fd), alive = listening(), Flag()
    thread = probes.serve(registry, fd, alive)
    yield port, alive, registry
    alive.alive = False
    thread.join(timeout=5)
    os.close(fd)


def test_readyz_and_healthz_answer_as_on_the_serving_port(
    app: Flask, serving: tuple[int, Flag, ModelRegistry]
) -> None:
    port, _, _ = serving
    client = app.test_client()
    for path in ("/readyz", "/healthz"):
        status, body = get(port, path)
        served = client.get(path)
        assert (status, body) == (served.status_code, served.get_json())
    assert get(port, "/readyz")[1]["status"] == "ready"


def test_an_unknown_probe_path_is_a_json_404(serving: tuple[int, Flag, ModelRegistry]) -> None:
    status, body = get(serving[0], "/predict_data")
    assert status == 404
    assert body["error"]["code"] == "not_found"


def test_a_registry_with_no_model_ready_is_503(tmp_path: Path) -> None:
    body, status = probes.readiness(ModelRegistry(tmp_path, "diabetes"))
    assert status == 503
    assert body["status"] == "not ready"


def test_the_workers_of_a_replica_share_the_probe_port(app: Flask) -> None:
    registry = app.extensions["modelfleet"].registry
    (port, fd), first, second = listening(), Flag(), Flag()
    threads = [probes.serve(registry, fd, flag) for flag in (first, second)]
    assert all(get(port, "/healthz")[0] == 200 for _ in range(20))
    first.alive = False  # one worker stops; the other keeps answering
    threads[0].join(timeout=5)
    assert not threads[0].is_alive()
    assert all(get(port, "/healthz")[0] == 200 for _ in range(20))
    second.alive = False
    threads[1].join(timeout=5)
    os.close(fd)


def test_a_probe_waits_for_the_next_worker_instead_of_being_refused(app: Flask) -> None:
    """While workers are replaced the master's socket stays open: the probe is answered by the
    next worker that starts, never refused."""
    registry = app.extensions["modelfleet"].registry
    (port, fd), old, new = listening(), Flag(), Flag()
    probes.serve(registry, fd, old)
    old.alive = False
    time.sleep(2 * probes.POLL_SECONDS)
    answers: list[tuple[int, Any]] = []
    asking = threading.Thread(target=lambda: answers.append(get(port, "/readyz")))
    asking.start()  # no worker is answering now
    time.sleep(0.3)
    thread = probes.serve(registry, fd, new)
    asking.join(timeout=5)
    assert answers and answers[0][0] == 200
    new.alive = False
    thread.join(timeout=5)
    os.close(fd)


def test_a_draining_replica_is_unready_on_both_ports_until_the_file_goes(
    make_app: Any, tmp_path: Path
) -> None:
    drain = tmp_path / "modelfleet.drain"
    app = make_app(drain_file=drain)
    registry = app.extensions["modelfleet"].registry
    (port, fd), alive = listening(), Flag()
    thread = probes.serve(registry, fd, alive, drain)
    try:
        assert get(port, "/readyz")[0] == 200
        drain.touch()
        status, body = get(port, "/readyz")
        assert (status, body["status"]) == (503, "draining")
        answer = app.test_client().get("/readyz")
        assert (answer.status_code, answer.get_json()["status"]) == (503, "draining")
        # Draining is not dying, and it still answers what it is sent.
        assert get(port, "/healthz")[0] == 200
        assert (
            app.test_client().get("/predict_data?pregnant=1&glucose=3&pressure=1").status_code
            == 200
        )
        drain.unlink()
        assert get(port, "/readyz") == (200, answer.get_json() | {"status": "ready"})
    finally:
        alive.alive = False
        thread.join(timeout=5)
        os.close(fd)


def test_an_idle_probe_thread_waits_instead_of_spinning(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between probes the thread sleeps in select for POLL_SECONDS at a time: a handful of
    rounds a second, not thousands (which took a quarter of a core in every worker)."""
    rounds: list[float] = []
    monkeypatch.setattr(probes._ProbeServer, "handle_timeout", lambda self: rounds.append(1))
    registry = app.extensions["modelfleet"].registry
    (port, fd), alive = listening(), Flag()
    thread = probes.serve(registry, fd, alive)
    try:
        time.sleep(1.2)
        assert get(port, "/healthz")[0] == 200
    finally:
        alive.alive = False
        thread.join(timeout=5)
        os.close(fd)
    assert 1 <= len(rounds) <= 4


def test_a_prober_that_hangs_up_early_leaves_no_traceback(
    serving: tuple[int, Flag, ModelRegistry], capfd: pytest.CaptureFixture[str]
) -> None:
    """upstream-sync reads the status line and closes; the server must take that quietly."""
    port = serving[0]
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            # A reset rather than an orderly close, as a reader that leaves data unread gets.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert get(port, "/healthz")[0] == 200
    assert "Traceback" not in capfd.readouterr().err
