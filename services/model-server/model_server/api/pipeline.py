"""Every request's way through the server: one WSGI callable in front of the Flask app.

``Pipeline`` is the one place for what every route shares:

* the request id (the caller's ``X-Request-ID`` when it is a short plain token, else our own),
  kept in the WSGI environ for the logs and echoed in the response;
* the ``X-Served-By`` and ``X-Request-ID`` response headers, and ``X-Model-Version`` on every
  answer of a request that named a known model (a prediction, its refusal, a model's metadata):
  the version that answered, so clients and rollouts can tell versions apart;
* the request metrics: in flight, count and duration by model, endpoint and status;
* error rendering (``refuse``): the JSON body in the route's protocol form, the log line and
  the error counter, for refusals from Flask views and from the fast routes alike.

The hottest routes, ``GET /predict_data``, ``GET /models/<name>/predict_data`` and
``POST /models/<name>/predict``, are dispatched here by a three-entry route table straight
to their handlers (``plumber.answer``, ``json_api.predict``), skipping Flask's request and
response objects, context locals, URL map and hooks: about 35 us a request, as much as
parsing, predicting and counting a one-row prediction together. They are the only
implementation of those routes: the Flask views registered for the same URLs call the same
handlers and are reached only for HEAD, OPTIONS and wrong methods (and when the table is
switched off, which the tests do to compare both dispatchers). Every other route is Flask's.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson
from werkzeug.http import HTTP_STATUS_CODES

from model_server.core.errors import RequestError
from model_server.metrics import NO_MODEL, Metrics

log = logging.getLogger("model_server")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
#: A fast-route handler: the environ and the model name from the path -> the JSON body.
Handler = Callable[[Environ, str | None, str | None], bytes]

#: Environ keys the pipeline and the routes share.
REQUEST_ID_KEY: Final = "modelfleet.request_id"
MODEL_KEY: Final = "modelfleet.model"  # a known model's name; unset: ``none``
VERSION_KEY: Final = "modelfleet.version"  # that model's version; unset: no X-Model-Version
ENDPOINT_KEY: Final = "modelfleet.endpoint"  # the endpoint label; None: not counted
# Request ids are echoed into headers and logs: accept only short, plain tokens so a client
# cannot inject log lines or oversized headers; anything else is replaced by our own id.
REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)
#: Path prefixes of the protocols whose errors are ``{"error": "<string>"}`` (nginx's
#: json-errors.conf makes the same choice for the errors it answers itself).
MESSAGE_ERROR_PREFIXES: Final = ("/v1/", "/v2/")
#: Scrapes are not work: counting them in flight would show every replica busy at scrape time.
SCRAPE_PATH: Final = "/metrics"
JSON_HEADER: Final = ("Content-Type", "application/json")
#: Status lines as werkzeug (and so Flask) writes them.
STATUS_LINES: Final = {code: f"{code} {phrase}" for code, phrase in HTTP_STATUS_CODES.items()}


def request_id(environ: Environ) -> str:
    """The caller's ``X-Request-ID`` if it is a plain token of at most 128 characters, else new."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    return incoming if REQUEST_ID_RE.fullmatch(incoming) else os.urandom(8).hex()


def answer_headers(environ: Environ, own_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pipeline's headers for this answer: ``own_headers``, and ``X-Model-Version`` once the
    request's model is known."""
    version = environ.get(VERSION_KEY)
    return own_headers if version is None else [*own_headers, ("X-Model-Version", version)]


def error_body(exc: RequestError, path: str) -> bytes:
    """The error body in the form of the route's protocol.

    KServe V1 and OIP v2 routes answer ``{"error": "<string>"}``: their specifications fix
    it, and Triton's client crashes printing anything else. Every other route answers the
    project's ``{"error": {"code", "message", "field"?}}``.
    """
    if (path + "/").startswith(MESSAGE_ERROR_PREFIXES):
        return orjson.dumps(exc.to_message_dict())
    return orjson.dumps(exc.to_dict())


def refuse(metrics: Metrics, environ: Environ, exc: RequestError) -> bytes:
    """Log and count a refused (or failed) request; its error body."""
    log.info(
        "request_id=%s %s %s refused: %s %s (field=%s)",
        environ.get(REQUEST_ID_KEY, "-"),
        environ.get("REQUEST_METHOD", "-"),
        environ.get("PATH_INFO", "")[:200],
        exc.status,
        exc.code,
        exc.field,
    )
    metrics.observe_error(environ.get(MODEL_KEY, NO_MODEL), exc.code)
    return error_body(exc, environ.get("PATH_INFO", ""))


def fail(metrics: Metrics, environ: Environ) -> tuple[int, bytes]:
    """For an unexpected exception being handled: log it, count it; 500 and its body.

    Log everything, answer nothing internal: the request id ties the two together.
    """
    log.exception("request_id=%s failed", environ.get(REQUEST_ID_KEY, "-"))
    internal = RequestError("internal", "internal server error")
    return internal.status, refuse(metrics, environ, internal)


def fast_route(method: str, path: str) -> tuple[str, str | None, str | None] | None:
    """``(endpoint, model name, version)`` of a fast route, else ``None`` (Flask's).

    The routes are ``/predict_data`` and ``/models/<name>[/versions/<version>]/<action>``.
    """
    if method == "GET":
        if path == "/predict_data":
            return "plumber", None, None
        suffix = "/predict_data"
    elif method == "POST":
        suffix = "/predict"
    else:
        return None
    if path.startswith("/models/") and path.endswith(suffix):
        name, _, version = path[8 : -len(suffix)].partition("/versions/")
        if name and "/" not in name and "/" not in version and (version or "/" not in _):
            return ("plumber" if method == "GET" else "predict"), name, version or None
    return None


class Pipeline:
    """The WSGI application gunicorn serves (see the module docstring).

    Args:
        app: The Flask app's WSGI callable, for every route without a fast handler.
        metrics: The server's metrics.
        replica_id: The ``X-Served-By`` value.
        handlers: Fast-route handlers by endpoint label (``plumber``, ``predict``); an empty
            mapping sends everything through Flask.
    """

    def __init__(
        self, app: WSGIApp, metrics: Metrics, replica_id: str, handlers: Mapping[str, Handler]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.replica_id = replica_id
        self.handlers = handlers

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        started = time.perf_counter()
        metrics = self.metrics
        rid = environ[REQUEST_ID_KEY] = request_id(environ)
        own_headers = [("X-Served-By", self.replica_id), ("X-Request-ID", rid)]
        counted = environ.get("PATH_INFO") != SCRAPE_PATH
        if counted:
            metrics.request_started()
        try:
            route = fast_route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
            handler = None if route is None else self.handlers.get(route[0])
            if handler is None or route is None:
                status, result = self._flask(environ, start_response, own_headers)
            else:
                environ[ENDPOINT_KEY] = route[0]
                status, body = self._fast(environ, handler, route[1], route[2])
                start_response(
                    STATUS_LINES[status],
                    [
                        JSON_HEADER,
                        ("Content-Length", str(len(body))),
                        *answer_headers(environ, own_headers),
                    ],
                )
                result = [body]
        finally:
            if counted:
                metrics.request_finished()
        endpoint = environ.get(ENDPOINT_KEY, "other")
        if endpoint is not None:
            metrics.observe_request(
                environ.get(MODEL_KEY, NO_MODEL),
                environ.get(VERSION_KEY, NO_MODEL),
                endpoint,
                status,
                time.perf_counter() - started,
            )
        return result

    def _fast(
        self, environ: Environ, handler: Handler, name: str | None, version: str | None
    ) -> tuple[int, bytes]:
        try:
            return 200, handler(environ, name, version)
        except RequestError as exc:
            return exc.status, refuse(self.metrics, environ, exc)
        except Exception:
            return fail(self.metrics, environ)

    def _flask(
        self, environ: Environ, start_response: StartResponse, own_headers: list[tuple[str, str]]
    ) -> tuple[int, Iterable[bytes]]:
        status = 500

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(line[:3])
            headers.extend(answer_headers(environ, own_headers))
            return start_response(line, headers, exc_info)

        result = self.app(environ, start)
        return status, result
