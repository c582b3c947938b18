"""gunicorn's responses in one write: the head and the first part of the body together.

gunicorn's ``Response.write`` sends the status line and headers with one ``sendall`` and the
body with another. Between the two a gthread worker releases the GIL, and another thread may
hold it for milliseconds; a replica that dies then (a crash, an OOM kill) leaves the load
balancer with a head it has already passed on and no body, which nginx cannot retry: the
client gets a truncated answer. Collecting the first write's output and sending it with one
``sendall`` closes that gap, and saves a system call per answer. Only the first write is
collected: gunicorn's own framing (Content-Length, chunked) runs unchanged, into a buffer.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http import wsgi


class _Collect:
    """A stand-in socket that keeps what is sent to it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(bytes(data))


class OneWriteResponse(wsgi.Response):
    """``wsgi.Response`` whose first write sends the head and that body part in one call."""

    def write(self, arg: Any) -> None:
        if self.headers_sent:
            super().write(arg)
            return
        sock: Any = self.sock  # type: ignore[has-type]  # gunicorn is untyped
        collected = _Collect()
        self.sock = collected
        try:
            super().write(arg)
        finally:
            # Also when write raised: what gunicorn had sent by then goes out, as without us.
            self.sock = sock
            if collected.parts:
                sock.sendall(b"".join(collected.parts))


def install() -> None:
    """Make gunicorn's workers build this response (``wsgi.create`` looks the class up on the
    module); called in the master, before they fork."""
    wsgi.Response = OneWriteResponse
