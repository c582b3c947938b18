"""The two hottest routes, answered without Flask's per-request machinery.

Flask builds a request and a response object, pushes context locals, matches the URL map
and dispatches hooks on every request: about 35 us, as much as parsing, predicting and
recording the metrics of a one-row prediction together. This WSGI middleware answers the
successful one-row traffic of ``GET /predict_data``, ``GET /models/<name>/predict_data`` and
``POST /models/<name>/predict`` (JSON) itself, with the very same core calls, response
bodies, headers and metrics as the Flask views (``plumber.answer_body``,
``json_api.prediction_body``). Every other request, and every request it would refuse, goes
to the Flask app unchanged, so refusals, the other protocols and the docs keep one
implementation. Tests compare both paths answer for answer.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from model_server.api.common import REQUEST_ID_RE, ServerState
from model_server.api.json_api import prediction_body
from model_server.api.plumber import answer_body, split_plain_query
from model_server.core.errors import RequestError
from model_server.core.parsing import decode_json, parse_json_payload, parse_query
from model_server.core.registry import LoadedModel

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Bodies larger than this go to Flask: one-row requests are far smaller, and Flask enforces
#: the configured body limit.
MAX_HOT_BODY = 64 * 1024


class HotPath:
    """WSGI middleware in front of the Flask app (see the module docstring)."""

    def __init__(self, app: WSGIApp, st: ServerState) -> None:
        self.app = app
        self.metrics = st.metrics
        self.replica_id = st.settings.replica_id
        self.max_rows = st.settings.max_rows
        self.max_body = min(MAX_HOT_BODY, st.settings.max_body_bytes)
        models = st.registry.models
        self.get_routes: dict[str, LoadedModel] = {
            f"/models/{name}/predict_data": m for name, m in models.items()
        }
        default = models.get(st.registry.default_model)
        if default is not None:
            self.get_routes["/predict_data"] = default
        self.post_routes = {f"/models/{name}/predict": m for name, m in models.items()}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Answer a hot request, or hand it to the Flask app."""
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method == "GET":
            model = self.get_routes.get(path)
        elif method == "POST":
            model = self.post_routes.get(path)
        else:
            model = None
        if model is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        metrics = self.metrics
        metrics.request_started()
        try:
            answer = self._answer(environ, model, method)
        except (RequestError, ValueError, TypeError, KeyError):
            answer = None
        if answer is None:
            # Refused, or not a plain one-row request: Flask answers it (and counts it).
            metrics.request_finished()
            return self.app(environ, start_response)
        body, endpoint = answer
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else os.urandom(8).hex()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Served-By", self.replica_id),
                ("X-Request-ID", request_id),
            ],
        )
        metrics.observe_request(model.name, endpoint, 200, time.perf_counter() - started)
        metrics.request_finished()
        return [body]

    def _answer(
        self, environ: dict[str, Any], model: LoadedModel, method: str
    ) -> tuple[bytes, str] | None:
        """The response body and endpoint label, or None to let Flask answer."""
        schema = model.bundle.schema
        if method == "GET":
            pairs = split_plain_query(environ.get("QUERY_STRING", ""))
            if pairs is None:
                return None
            x = parse_query(pairs, schema)
            result = model.predictor.predict(x)
            body = answer_body(result)
            endpoint = "plumber"
        else:
            content_type = environ.get("CONTENT_TYPE", "")
            length = environ.get("CONTENT_LENGTH", "")
            if content_type.partition(";")[0].strip().lower() != "application/json":
                return None
            if not length.isdigit() or int(length) > self.max_body:
                return None
            raw = environ["wsgi.input"].read(int(length))
            # Flask may have to read the body again if the request is handed over.
            environ["wsgi.input"] = io.BytesIO(raw)
            x = parse_json_payload(decode_json(raw), schema, self.max_rows)
            result = model.predictor.predict(x)
            body = prediction_body(model, result)
            endpoint = "predict"
        out = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        self.metrics.observe_prediction(model.name, len(x), result.counts)
        return out, endpoint
