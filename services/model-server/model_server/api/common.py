"""What every adapter shares: app state, orjson responses, model lookup, metric labels."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import orjson
from flask import Response, current_app, g, request

from model_server.core.errors import RequestError
from model_server.core.predict import Prediction
from model_server.core.registry import LoadedModel, ModelRegistry
from model_server.metrics import NO_MODEL, Metrics
from model_server.settings import Settings

EXTENSION_KEY: Final = "modelfleet"
# Request ids are echoed into headers and logs: accept only short, plain tokens so a client
# cannot inject log lines or oversized headers; anything else is replaced by our own id.
REQUEST_ID_RE: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}", re.ASCII)
#: Path prefixes of the protocols whose errors are ``{"error": "<string>"}`` (nginx's
#: json-errors.conf makes the same choice for the errors it answers itself).
MESSAGE_ERROR_PREFIXES: Final = ("/v1/", "/v2/")
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
    """Declare a view's ``endpoint`` metric label (``None``: not counted, e.g. /metrics)."""

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


def error_response(exc: RequestError) -> Response:
    """The error body for ``exc`` with its HTTP status, in the shape the route's protocol uses.

    KServe V1 and OIP v2 routes answer ``{"error": "<string>"}``: their specifications fix
    it, and Triton's client crashes printing anything else. Every other route answers the
    project's ``{"error": {"code", "message", "field"?}}``.
    """
    if (request.path + "/").startswith(MESSAGE_ERROR_PREFIXES):
        return json_response(exc.to_message_dict(), exc.status)
    return json_response(exc.to_dict(), exc.status)


def get_model(name: str | None) -> LoadedModel:
    """Look up a model and label this request's metrics with it.

    The metric label is set only for a known model, so a made-up name in a URL can never
    become a label value (it stays ``none``).
    """
    model = state().registry.get(name)
    g.metric_model = model.name
    return model


def current_model_label() -> str:
    """The ``model`` label for this request: a known model's name or ``none``."""
    return g.get("metric_model", NO_MODEL)


def predict(model: LoadedModel, x: np.ndarray) -> Prediction:
    """Run the model and record the prediction metrics."""
    result = model.predictor.predict(x)
    state().metrics.observe_prediction(model.name, len(x), result.counts)
    return result


def require_mimetype(allowed: frozenset[str], advertised: frozenset[str] | None = None) -> str:
    """The request's media type, or ``unsupported_media_type`` (415) if not in ``allowed``.

    The 415 names ``advertised`` (default: ``allowed``): routes that also tolerate a missing
    or a form Content-Type recommend only the real one.
    """
    mimetype = request.mimetype
    if mimetype not in allowed:
        raise RequestError(
            "unsupported_media_type",
            f"Content-Type {mimetype or '(none)'!r} is not supported here; "
            f"use {' or '.join(sorted(advertised or allowed))}",
        )
    return mimetype


def model_summary(model: LoadedModel) -> dict[str, Any]:
    """Short description of a model for listings."""
    b = model.bundle
    return {
        "name": b.name,
        "version": b.version,
        "task": b.task,
        "features": list(b.schema.names),
        "sha256": b.sha256,
    }
