"""``/openapi.json`` (OpenAPI 3.1, every route) and ``/docs`` (plain HTML, no external assets).

The document is data plus what the loaded models add to it. The data, shipped beside this
module, is everything that does not depend on a model: ``openapi_base.json`` (info and shared
components), ``openapi_paths.json`` (ModelFleet, plumber, SageMaker and MLflow routes),
``openapi_paths_kserve.json`` (KServe V1 and OIP v2) and ``openapi_paths_internal.json``
(health and metrics). ``openapi_models`` and ``docs_kserve`` build the rest from the models:
request schemas, per-model operations, and the model names and versions path parameters accept.

Both documents are rendered once when the blueprint is registered: the model list and
feature names are fixed for the life of the process.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Final

import orjson
from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState

from model_server import __version__
from model_server.api.common import EXTENSION_KEY, ServerState, endpoint_label, json_response
from model_server.api.docs_kserve import kserve_model_paths
from model_server.api.openapi_models import (
    invocations_body,
    model_paths,
    model_schemas,
    query_params,
    schema_key,
)
from model_server.core.errors import ERROR_CODES

bp = Blueprint("docs", __name__)
_DOCS_KEY: Final = "modelfleet.docs"
_DATA_DIR: Final = Path(__file__).parent
#: The static document's parts, merged in this order.
_DATA_FILES: Final = (
    "openapi_base.json",
    "openapi_paths.json",
    "openapi_paths_internal.json",
    "openapi_paths_kserve.json",
)
#: The internal routes' paths: the load balancer answers them 404 (nginx/nginx.conf).
INTERNAL_FILE: Final = "openapi_paths_internal.json"


@bp.record_once
def _render(setup: BlueprintSetupState) -> None:
    app = setup.app
    internal = build_spec(app.extensions[EXTENSION_KEY])
    public = public_spec(internal)
    app.extensions[_DOCS_KEY] = (public, internal, render_html(public).encode())


@bp.get("/openapi.json")
@endpoint_label("metadata")
def openapi() -> Response:
    """The public OpenAPI document: every route the load balancer serves."""
    return json_response(current_app.extensions[_DOCS_KEY][0])


@bp.get("/openapi.internal.json")
@endpoint_label("metadata")
def openapi_internal() -> Response:
    """The OpenAPI document of every route, the replicas' internal ones included."""
    return json_response(current_app.extensions[_DOCS_KEY][1])


@bp.get("/docs")
@endpoint_label("metadata")
def docs() -> Response:
    """Human-readable API documentation generated from the public OpenAPI document."""
    return Response(current_app.extensions[_DOCS_KEY][2], mimetype="text/html")


# --------------------------------------------------------------------------------------------
# The specification


def load_static() -> dict[str, Any]:
    """The static document: the data files merged (each adds paths; the base has the rest)."""
    spec: dict[str, Any] = {"paths": {}}
    for name in _DATA_FILES:
        part = json.loads((_DATA_DIR / name).read_text(encoding="utf-8"))
        spec["paths"].update(part.pop("paths", {}))
        spec.update(part)
    return spec


def public_spec(internal: dict[str, Any]) -> dict[str, Any]:
    """``internal`` without the routes the load balancer does not serve."""
    hidden = json.loads((_DATA_DIR / INTERNAL_FILE).read_text(encoding="utf-8"))["paths"]
    paths = {p: ops for p, ops in internal["paths"].items() if p not in hidden}
    return {**internal, "paths": paths}


def build_spec(st: ServerState) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of this server and its loaded models."""
    registry = st.registry
    spec = load_static()
    names = sorted(registry.models) or [registry.default_model]
    versions = sorted({v for loaded in registry.versions.values() for v in loaded}) or ["0"]
    spec["info"]["version"] = __version__
    components = spec["components"]
    # The values the static document leaves to the code: one place for each.
    error = components["schemas"]["Error"]["properties"]["error"]
    error["properties"]["code"]["enum"] = list(ERROR_CODES)
    params = components["parameters"]
    params["ModelName"]["schema"]["enum"] = names
    params["ModelVersion"]["schema"]["enum"] = versions
    for unknown in ("UnknownModelName", "UnknownModelNameNoColon"):
        params[unknown]["schema"]["not"]["enum"] = names
    paths = spec["paths"]
    default = registry.models.get(registry.default_model)
    if default is not None:
        paths["/predict_data"]["get"]["parameters"] = query_params(default)
    components["requestBodies"] = {
        "InvocationsBody": invocations_body(sorted(registry.models), default)
    }
    target = paths["/invocations"]["post"]["parameters"][0]
    target["schema"].update(enum=["", *sorted(registry.models)], default=registry.default_model)
    target["description"] += f" ({registry.default_model})"
    # Unversioned routes serve the current version; each loaded version has its own routes
    # and, when it is not current, its own schemas (its features may differ).
    for name, model in sorted(registry.models.items()):
        paths.update(model_paths(model, name, versioned=False))
        paths.update(kserve_model_paths(model, name, versioned=False))
        components["schemas"].update(model_schemas(model, st.settings.max_rows, name))
    for name, loaded in sorted(registry.versions.items()):
        for version, model in sorted(loaded.items()):
            key = schema_key(model, registry.current[name] == version)
            paths.update(model_paths(model, key, versioned=True))
            paths.update(kserve_model_paths(model, key, versioned=True))
            components["schemas"].update(model_schemas(model, st.settings.max_rows, key))
    return spec


# --------------------------------------------------------------------------------------------
# HTML rendering


def _deref(spec: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """``obj``, or the component it refers to (``{"$ref": "#/components/..."}``)."""
    pointer = obj.get("$ref")
    if pointer is None:
        return obj
    target: dict[str, Any] = spec
    for key in pointer.removeprefix("#/").split("/"):
        target = target[key]
    return target


def render_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML page listing every operation of ``spec``."""
    e = html.escape
    parts = [
        # An empty icon: without one, browsers ask for /favicon.ico, which is no route here.
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<link rel='icon' href='data:,'>",
        f"<title>{e(spec['info']['title'])}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "code,pre{background:#f4f4f4;padding:.1em .3em}pre{padding:.6em;overflow:auto}"
        ".m{display:inline-block;min-width:4em;font-weight:bold}</style></head><body>",
        f"<h1>{e(spec['info']['title'])} {e(spec['info']['version'])}</h1>",
        f"<p>{e(spec['info']['description'])}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<h2><span class='m'>{e(method.upper())}</span> <code>{e(path)}</code></h2>"
            )
            parts.append(f"<p>{e(op.get('summary', ''))}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<ul>")
                for p in (_deref(spec, p) for p in params):
                    required = " (required)" if p.get("required") else ""
                    desc = e(p.get("description", ""))
                    parts.append(
                        f"<li><code>{e(p['name'])}</code> in {e(p['in'])}{required} {desc}</li>"
                    )
                parts.append("</ul>")
            body = _deref(spec, op.get("requestBody", {}))
            if body:
                types = ", ".join(body["content"])
                parts.append(f"<p>Request body: {e(types)}</p>")
            statuses = ", ".join(
                f"{code} {_deref(spec, r)['description']}" for code, r in op["responses"].items()
            )
            parts.append(f"<p>Responses: {e(statuses)}</p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in spec["components"]["schemas"].items():
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()
        parts.append(f"<h3 id='{e(name)}'>{e(name)}</h3><pre>{e(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
