"""The Flask application factory.

Gunicorn runs ``model_server.app:create_app()``; tests call ``create_app(Settings(...))``.
Nothing is created at import time: settings, the model registry and the metrics are built
here and handed to the blueprints through ``app.extensions``.

The app's WSGI callable is ``api.pipeline.Pipeline``: every request passes it (request id,
response headers, request metrics); it answers the plumber GETs and
``POST /models/<name>/predict`` itself with their handlers and hands every other request to
Flask, whose error handlers below render refusals through the same ``pipeline.refuse``.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Final

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from model_server.api.common import EXTENSION_KEY, ServerState, body_too_large
from model_server.api.pipeline import ENDPOINT_KEY, Pipeline, fail, refuse
from model_server.core.errors import RequestError
from model_server.core.registry import ModelRegistry
from model_server.metrics import Metrics
from model_server.rollout_metrics import RolloutHistoryCollector
from model_server.settings import Settings

log = logging.getLogger("model_server")

# Werkzeug's HTTP errors mapped to our error codes (others: 4xx malformed_body, 5xx internal).
_HTTP_CODES: Final = {
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def create_app(
    settings: Settings | None = None, metrics_registry: CollectorRegistry | None = None
) -> Flask:
    """Build the app: settings, verified models, metrics, blueprints, hooks, error handlers.

    Args:
        settings: Configuration; read from the environment when omitted.
        metrics_registry: In-process metrics registry (tests pass a fresh one); defaults to
            prometheus-client's global registry. Unused in multiprocess mode.
    """
    settings = settings or Settings.from_env()
    _configure_logging(settings)

    # No static folder: the server has no static files, and no route should exist unplanned.
    app = Flask(__name__, static_folder=None)
    # Flask refuses larger bodies with 413 before a view reads them.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes

    # Models load eagerly, before the first request; a version that fails is never served,
    # /readyz and the log name it, and every other model is served.
    registry = ModelRegistry(settings.model_dir, settings.default_model, settings.index_file)
    registry.load_all()

    metrics = Metrics(settings.prometheus_multiproc_dir, metrics_registry)
    loaded = [m for versions in registry.versions.values() for m in versions.values()]
    metrics.init_server(
        settings.replica_id,
        [
            (m.name, m.version, m.bundle.sha256, registry.current[m.name] == m.version)
            for m in loaded
        ],
        {name: name in registry.models for name in registry.names},
        settings.release,
    )
    for model in loaded:
        metrics.init_answers(model.name, model.version, model.predictor.answer_labels)
    metrics.rollouts = RolloutHistoryCollector(settings.model_dir, registry.names)

    server_state = ServerState(settings, registry, metrics)
    app.extensions[EXTENSION_KEY] = server_state

    # One blueprint per protocol; imported here so importing the package builds nothing.
    from model_server.api import (
        docs,
        health,
        json_api,
        kserve_v1,
        mlflow,
        oip_v2,
        plumber,
        sagemaker,
    )

    for module in (health, plumber, json_api, sagemaker, mlflow, kserve_v1, oip_v2, docs):
        app.register_blueprint(module.bp)

    _register_error_handlers(app, server_state)
    _label_endpoints(app)
    # Every request goes through the pipeline; the fast route table answers the hottest
    # routes with the same handlers the Flask views call.
    handlers = {
        "plumber": functools.partial(plumber.answer, server_state),
        "predict": functools.partial(json_api.predict, server_state),
    }
    app.wsgi_app = Pipeline(  # type: ignore[method-assign]
        app.wsgi_app, metrics, settings.replica_id, handlers
    )
    log.info(
        "model server ready=%s models=%s replica=%s pid=%d",
        registry.ready,
        ",".join(sorted(registry.models)) or "-",
        settings.replica_id,
        os.getpid(),
    )
    return app


def _configure_logging(settings: Settings) -> None:
    logger = logging.getLogger("model_server")
    logger.setLevel(settings.log_level_number)
    if not logger.handlers:  # create_app may run several times in one process (tests)
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False


def _label_endpoints(app: Flask) -> None:
    # The pipeline counts each request under its view's endpoint label; only Flask knows which
    # view a URL is routed to (including its automatic OPTIONS answers), so it says so here.
    labels = {
        endpoint: getattr(view, "metric_endpoint", "other")
        for endpoint, view in app.view_functions.items()
    }

    @app.before_request
    def label_endpoint() -> None:
        request.environ[ENDPOINT_KEY] = labels.get(request.endpoint or "", "other")


def _register_error_handlers(app: Flask, st: ServerState) -> None:
    # Flask's views raise; ``pipeline.refuse`` logs, counts and renders, as for the fast routes.
    def refusal(exc: RequestError, status: int | None = None) -> Response:
        body = refuse(st.metrics, request.environ, exc)
        return Response(body, status or exc.status, mimetype="application/json")

    @app.errorhandler(RequestError)
    def on_request_error(exc: RequestError) -> Response:
        return refusal(exc)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "malformed_body" if status < 500 else "internal")
        if status == 404:
            message = f"no route for {request.method} {request.path[:200]}"
        elif status == 405:
            allowed = ", ".join(sorted(exc.valid_methods or ()))  # type: ignore[attr-defined]
            message = f"method {request.method} is not allowed here; allowed: {allowed}"
        elif status == 413:
            message = body_too_large(st.settings.max_body_bytes).message
        else:
            message = exc.description or exc.name
        response = refusal(RequestError(code, message), status)
        if status == 405:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def on_unexpected(_exc: Exception) -> Response:
        status, body = fail(st.metrics, request.environ)
        return Response(body, status, mimetype="application/json")
