"""gunicorn's own refusals as JSON, in the server's error shape, instead of its HTML page.

gunicorn answers malformed HTTP and requests over its limits (request line, header size and
count) before the app sees them, with a hard-coded HTML body written by
``gunicorn.util.write_error``. Replacing that one function (gunicorn.conf.py does it in the
master, before the workers fork) is the only hook gunicorn offers; the signature is gunicorn's.
Behind nginx these answers are rare (nginx.conf's limits are the same or lower), but a replica
reached directly must not answer HTML either.
"""

from __future__ import annotations

import socket
from typing import Final

import orjson
from gunicorn import util

#: gunicorn's statuses and the project's error codes for them (nginx uses the same names).
CODES: Final = {
    400: "malformed_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "header_too_large",
    500: "internal",
}


def json_error_response(status: int, reason: str, message: str) -> bytes:
    """The complete HTTP response gunicorn sends for a request it refuses itself."""
    text = f"{reason}: {message}" if message else reason
    body = orjson.dumps(
        {"error": {"code": CODES.get(status, "malformed_request"), "message": text}}
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in replacement of ``gunicorn.util.write_error``."""
    util.write_nonblock(sock, json_error_response(status_int, reason, mesg))


def install() -> None:
    """Make gunicorn's workers write JSON errors (they look the function up on the module)."""
    util.write_error = write_json_error
