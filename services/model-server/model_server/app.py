"""The Flask application factory.

Gunicorn runs ``model_server.app:create_app()``; tests call ``create_app(Settings(...))``.
Nothing is created at import time: settings, the model registry and the metrics are built
here and handed to the blueprints through ``app.extensions``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Final

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from model_server.api.common import (
    EXTENSION_KEY,
    REQUEST_ID_RE,
    ServerState,
    current_model_label,
    error_response,
    state,
)
from model_server.core.errors import RequestError
from model_server.core.registry import ModelRegistry
from model_server.metrics import NO_MODEL, Metrics
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

    # Models load eagerly, before the first request; failures leave the app alive but not
    # ready, so /healthz answers, /readyz says 503 and the log names the bad bundle.
    registry = ModelRegistry(settings.model_dir, settings.default_model)
    registry.load_all()

    metrics = Metrics(settings.prometheus_multiproc_dir, metrics_registry)
    metrics.init_server(
        settings.replica_id,
        {n: (m.bundle.version, m.bundle.sha256) for n, m in registry.models.items()},
        registry.failures,
    )
    for name, model in registry.models.items():
        metrics.init_answers(name, model.predictor.answer_labels)

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

    _register_hooks(app, server_state)
    _register_error_handlers(app)
    from model_server.api.hot_path import HotPath

    app.wsgi_app = HotPath(app.wsgi_app, server_state)  # type: ignore[method-assign]
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


def _register_hooks(app: Flask, st: ServerState) -> None:
    # These run on every request: Flask's context-local proxies (request, g) are resolved once
    # per hook and the server state is bound here, not looked up through current_app.
    metrics = st.metrics
    replica_id = st.settings.replica_id
    views = app.view_functions

    @app.before_request
    def start_request() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx = g._get_current_object()
        ctx.started = time.perf_counter()
        incoming = req.environ.get("HTTP_X_REQUEST_ID", "")  # = headers.get("X-Request-ID")
        ctx.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else os.urandom(8).hex()
        # Scrapes are not work: counting them would show every replica busy at scrape time.
        if req.endpoint != "health.metrics":
            metrics.request_started()
            ctx.in_flight = True

    @app.after_request
    def finish_request(response: Response) -> Response:
        ctx = g._get_current_object()
        headers = response.headers
        headers["X-Served-By"] = replica_id
        request_id = getattr(ctx, "request_id", None)
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        view = views.get(request.endpoint or "")
        label = getattr(view, "metric_endpoint", "other") if view is not None else "other"
        started = getattr(ctx, "started", None)
        if label is not None and started is not None:
            metrics.observe_request(
                getattr(ctx, "metric_model", NO_MODEL),  # = current_model_label()
                label,
                response.status_code,
                time.perf_counter() - started,
            )
        return response

    @app.teardown_request
    def end_request(_exc: BaseException | None) -> None:
        if g.pop("in_flight", False):
            metrics.request_finished()


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestError)
    def on_request_error(exc: RequestError) -> Response:
        state().metrics.observe_error(current_model_label(), exc.code)
        log.info(
            "request_id=%s %s %s refused: %s %s (field=%s)",
            g.get("request_id", "-"),
            request.method,
            request.path,
            exc.status,
            exc.code,
            exc.field,
        )
        return error_response(exc)

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
            limit = state().settings.max_body_bytes
            message = f"the request body exceeds {limit} bytes"
        else:
            message = exc.description or exc.name
        err = RequestError(code, message)
        state().metrics.observe_error(current_model_label(), code)
        log.info(
            "request_id=%s %s %s refused: %s %s",
            g.get("request_id", "-"),
            request.method,
            request.path[:200],
            status,
            code,
        )
        response = error_response(err)
        response.status_code = status
        if status == 405:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception) -> Response:
        # Log everything, answer nothing internal: the request id ties the two together.
        log.exception(
            "request_id=%s %s %s failed", g.get("request_id", "-"), request.method, request.path
        )
        state().metrics.observe_error(current_model_label(), "internal")
        return error_response(RequestError("internal", "internal server error"))
