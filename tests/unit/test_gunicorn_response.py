"""model_server/gunicorn_response.py: an answer's head and body leave in one write.

Specification: the first write of a response sends the status line, the headers and that body
part with a single ``sendall`` (a replica that dies mid-answer can then not leave a head without
a body); later writes and gunicorn's framing are unchanged.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from model_server import gunicorn_response


class Socket:
    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append(bytes(data))


def response(sock: Socket) -> gunicorn_response.OneWriteResponse:
    req = SimpleNamespace(version=(1, 1), method="GET", should_close=lambda: False, headers=[])
    resp = gunicorn_response.OneWriteResponse(req, sock, Config())
    resp.start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "7")])
    return resp


def test_the_head_and_the_first_body_part_leave_in_one_sendall() -> None:
    sock = Socket()
    resp = response(sock)
    resp.write(b'{"a":1}')
    resp.close()
    assert len(sock.calls) == 1
    head, body = sock.calls[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 7" in head
    assert body == b'{"a":1}'


def test_later_writes_go_out_as_gunicorn_writes_them() -> None:
    sock = Socket()
    resp = response(sock)
    resp.write(b'{"a"')
    resp.write(b":1}")
    assert sock.calls[1:] == [b":1}"]


def test_what_was_collected_is_sent_when_a_write_fails() -> None:
    sock = Socket()
    resp = response(sock)
    with pytest.raises(TypeError):
        resp.write("not bytes")  # type: ignore[arg-type]
    assert len(sock.calls) == 1 and sock.calls[0].startswith(b"HTTP/1.1 200 OK")


def test_install_makes_gunicorn_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsgi, "Response", wsgi.Response)
    gunicorn_response.install()
    assert wsgi.Response is gunicorn_response.OneWriteResponse
