"""What every adapter shares: app state, orjson responses, model lookup, media types.

The request-level concerns (request id, response headers, request metrics, error bodies)
are ``pipeline``'s; the helpers here that take the WSGI ``environ`` serve the fast routes
and the Flask views alike, and their Flask-flavoured twins are one-line wrappers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import orjson
from flask import Response, current_app, request

from model_server.api.pipeline import MODEL_KEY, VERSION_KEY, Environ
from model_server.core.errors import RequestError
from model_server.core.parsing import parse_csv, parse_json_body
from model_server.core.predict import Prediction
from model_server.core.registry import LoadedModel, ModelRegistry
from model_server.core.schema import Schema
from model_server.metrics import Metrics
from model_server.settings import Settings

EXTENSION_KEY: Final = "modelfleet"
JSON_MIMETYPES: Final = frozenset({"application/json"})
#: What KServe's and Triton's servers read as JSON: they ignore the Content-Type, and their
#: users' requests come without one (Triton's client) or with curl -d's form type.
KSERVE_JSON_MIMETYPES: Final = frozenset(
    {"", "application/json", "application/x-www-form-urlencoded"}
)
CSV_MIMETYPES: Final = frozenset({"text/csv"})

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ServerState:
    """Everything the views need, created once by ``create_app``."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics


def state() -> ServerState:
    """The current app's ``ServerState``."""
    return current_app.extensions[EXTENSION_KEY]


def endpoint_label(label: str | None) -> Callable[[F], F]:
    """Declare a view's ``endpoint`` metric label (``None``: not counted, e.g. /metrics).

    ``app.py`` hands the label of the view a request is routed to to the pipeline, which
    counts the request under it; a request routed to no view (404, 405) counts as ``other``.
    """

    def decorate(view: F) -> F:
        view.metric_endpoint = label  # type: ignore[attr-defined]
        return view

    return decorate


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (several times faster than Flask's encoder)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


def readiness_response() -> Response:
    """``{"status": "ok"}`` with 200 once every model is loaded and verified, else 503.

    The health answer of the SageMaker (``/ping``) and MLflow (``/health``) contracts.
    """
    ready = state().registry.ready
    return json_response({"status": "ok" if ready else "not ready"}, 200 if ready else 503)


def lookup_model(
    registry: ModelRegistry, environ: Environ, name: str | None, version: str | None = None
) -> LoadedModel:
    """Look up a model version (the current one for ``None``), label this request's metrics
    with the model and name its version in the answer (``X-Model-Version``).

    The metric label is set only for a known model, so a made-up name in a URL can never
    become a label value (it stays ``none``).
    """
    model = registry.get(name, version)
    environ[MODEL_KEY] = model.name
    environ[VERSION_KEY] = model.version
    return model


def get_model(name: str | None, version: str | None = None) -> LoadedModel:
    """``lookup_model`` for the current Flask request."""
    return lookup_model(state().registry, request.environ, name, version)


def run_model(metrics: Metrics, model: LoadedModel, x: np.ndarray) -> Prediction:
    """Run the model and record the prediction metrics."""
    result = model.predictor.predict(x)
    metrics.observe_prediction(model.name, model.version, len(x), result.counts)
    return result


def predict(model: LoadedModel, x: np.ndarray) -> Prediction:
    """``run_model`` for the current Flask request."""
    return run_model(state().metrics, model, x)


def media_type(environ: Environ) -> str:
    """The request's media type, lower case, without parameters (``""`` when absent)."""
    return environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()


def body_too_large(limit: int) -> RequestError:
    """The refusal of a body over ``limit`` bytes (``read_body``'s and Flask's 413 alike)."""
    return RequestError("body_too_large", f"the request body exceeds {limit} bytes")


def read_body(environ: Environ, limit: int) -> bytes:
    """The request body, or ``body_too_large`` (413) when it exceeds ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading. A body without
    one (chunked) is read only from a server that ends the stream itself
    (``wsgi.input_terminated``, as gunicorn does), up to one byte past the limit, so a body
    that is too large is refused rather than cut short; from any other server it is empty.
    This is werkzeug's ``get_input_stream`` logic without its ``LimitedStream``, which costs
    about as much as parsing a one-row body and silently truncates a chunked body at the limit.
    """
    length = environ.get("CONTENT_LENGTH", "")
    stream = environ["wsgi.input"]
    if length.isdigit() and length.isascii():
        if int(length) > limit:
            raise body_too_large(limit)
        declared: bytes = stream.read(int(length))
        return declared
    if not environ.get("wsgi.input_terminated"):
        return b""
    data: bytes = stream.read(limit + 1)
    if len(data) > limit:
        raise body_too_large(limit)
    return data


def request_body() -> bytes:
    """``read_body`` of the current Flask request, with the configured limit."""
    return read_body(request.environ, state().settings.max_body_bytes)


def parse_table(mimetype: str, body: bytes, schema: Schema, max_rows: int) -> np.ndarray:
    """A CSV or JSON body (by its media type) as the model's feature matrix."""
    if mimetype in CSV_MIMETYPES:
        return parse_csv(body, schema, max_rows)
    return parse_json_body(body, schema, max_rows)


def check_media_type(
    mimetype: str, allowed: frozenset[str], advertised: frozenset[str] | None = None
) -> str:
    """``mimetype``, or ``unsupported_media_type`` (415) if not in ``allowed``.

    The 415 names ``advertised`` (default: ``allowed``): routes that also tolerate a missing
    or a form Content-Type recommend only the real one.
    """
    if mimetype not in allowed:
        raise RequestError(
            "unsupported_media_type",
            f"Content-Type {mimetype or '(none)'!r} is not supported here; "
            f"use {' or '.join(sorted(advertised or allowed))}",
        )
    return mimetype


def require_mimetype(allowed: frozenset[str], advertised: frozenset[str] | None = None) -> str:
    """``check_media_type`` of the current Flask request."""
    return check_media_type(media_type(request.environ), allowed, advertised)


def model_summary(model: LoadedModel, versions: list[str] | None = None) -> dict[str, Any]:
    """Short description of a model for listings: its current version, and the versions
    loaded beside it when given."""
    b = model.bundle
    out: dict[str, Any] = {
        "name": b.name,
        "version": b.version,
        "task": b.task,
        "features": list(b.schema.names),
        "sha256": b.sha256,
    }
    if versions is not None:
        out["versions"] = versions
    return out
