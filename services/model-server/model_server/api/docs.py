"""``/openapi.json`` (OpenAPI 3.1, every route) and ``/docs`` (plain HTML, no external assets).

Both documents are rendered once when the blueprint is registered: the model list and
feature names are fixed for the life of the process.
"""

from __future__ import annotations

import html
from typing import Any, Final

import orjson
from flask import Blueprint, Response, current_app
from flask.blueprints import BlueprintSetupState

from model_server import __version__
from model_server.api.common import EXTENSION_KEY, ServerState, endpoint_label, json_response
from model_server.api.docs_kserve import kserve_paths, kserve_schemas
from model_server.api.openapi_parts import errors, json_content, ref
from model_server.core.errors import ERROR_CODES
from model_server.core.parsing import TENSOR_FLOAT_TYPES, TENSOR_INT_TYPES
from model_server.core.registry import LoadedModel
from model_server.core.schema import Feature

bp = Blueprint("docs", __name__)
_DOCS_KEY: Final = "modelfleet.docs"
TENSOR_DATATYPES: Final = sorted(TENSOR_FLOAT_TYPES | TENSOR_INT_TYPES)


@bp.record_once
def _render(setup: BlueprintSetupState) -> None:
    app = setup.app
    spec = build_spec(app.extensions[EXTENSION_KEY])
    app.extensions[_DOCS_KEY] = (spec, render_html(spec).encode())


@bp.get("/openapi.json")
@endpoint_label("metadata")
def openapi() -> Response:
    """The OpenAPI document."""
    return json_response(current_app.extensions[_DOCS_KEY][0])


@bp.get("/docs")
@endpoint_label("metadata")
def docs() -> Response:
    """Human-readable API documentation generated from the OpenAPI document."""
    return Response(current_app.extensions[_DOCS_KEY][1], mimetype="text/html")


# --------------------------------------------------------------------------------------------
# The specification


def _component(kind: str, model: str) -> str:
    """Component name of a model's schema (letters, digits and ``_`` only)."""
    return kind + "_" + "".join(c if c.isalnum() else "_" for c in model)


def _feature_schema(f: Feature) -> dict[str, Any]:
    if f.allowed is not None:
        return {"enum": [int(v) if v.is_integer() else v for v in f.allowed]}
    return {"type": "number", "minimum": f.min, "maximum": f.max}


def _int_range_regex(n: int) -> str:
    """A regex for the decimal integers 0..n (no leading zeros)."""
    digits = str(n)
    parts = ["[0-9]" if k == 1 else f"[1-9][0-9]{{{k - 1}}}" for k in range(1, len(digits))]
    for i, d in enumerate(digits):
        low = 1 if i == 0 and len(digits) > 1 else 0
        if int(d) > low:
            rest = len(digits) - i - 1
            parts.append(digits[:i] + f"[{low}-{int(d) - 1}]" + ("[0-9]" * rest))
    parts.append(digits)
    return "(?:" + "|".join(parts) + ")"


def _csv_cell_regex(f: Feature) -> str:
    """Decimal spellings of the values a feature accepts (exact for [0, integer] ranges)."""
    if f.allowed is not None and all(v.is_integer() and v >= 0 for v in f.allowed):
        return "(?:" + "|".join(str(int(v)) for v in f.allowed) + ")"
    if f.min == 0 and f.max.is_integer() and f.max >= 1:
        top = int(f.max)
        return f"(?:{_int_range_regex(top - 1)}(?:\\.[0-9]{{1,6}})?|{top}(?:\\.0{{1,6}})?)"
    return r"(?:[0-9]+(?:\.[0-9]+)?)"  # pragma: no cover - no such feature in the seed models


def model_schemas(model: LoadedModel, max_rows: int) -> dict[str, Any]:
    """Exact request schemas of one model: what the server accepts, feature by feature.

    The route that receives a body is per model (``/models/<name>/predict`` ...), because
    what is valid depends on the model: its features, their ranges and allowed values.
    """
    schema = model.bundle.schema
    names = list(schema.names)
    features = [_feature_schema(f) for f in schema.features]
    record = {
        "type": "object",
        "description": f"One row of {model.name}: every feature by name",
        "required": names,
        "properties": dict(zip(names, features, strict=True)),
        "additionalProperties": False,
    }
    row = {
        "type": "array",
        "description": f"One row of {model.name} in feature order: {', '.join(names)}",
        "prefixItems": features,
        "minItems": schema.width,
        "maxItems": schema.width,
    }
    records = {"type": "array", "minItems": 1, "maxItems": max_rows, "items": record}
    rows = {"type": "array", "minItems": 1, "maxItems": max_rows, "items": row}

    def wrapper(key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [key],
            "properties": {key: value, "params": {"description": "MLflow params, ignored"}},
            "additionalProperties": False,
        }

    json_body = {
        "description": "One record, a batch of records or of rows, or an MLflow/TF-serving "
        "wrapper of them. Also accepted (not expressible in JSON Schema): columnar "
        '{"inputs": {feature: [values]}} with equal lengths, and dataframe_split with the '
        "columns in any order.",
        "oneOf": [
            record,
            records,
            rows,
            wrapper("instances", {"oneOf": [records, rows]}),
            wrapper("inputs", {"oneOf": [records, rows]}),
            wrapper("dataframe_records", records),
            wrapper(
                "dataframe_split",
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"columns": {"const": names}, "data": rows, "index": {}},
                    "additionalProperties": False,
                },
            ),
        ],
    }
    cell = [_csv_cell_regex(f) for f in schema.features]
    line = ",".join(cell)
    csv_body = {
        "type": "string",
        "description": f"CSV rows in feature order ({', '.join(names)}), optionally after a "
        "header line naming the features (any order is accepted)",
        "pattern": f"^(?:{','.join(names)}\n)?{line}(?:\n{line}){{0,9}}\n?$",
    }
    classifier = model.bundle.task == "classification"
    float_types = sorted(TENSOR_FLOAT_TYPES)
    infer = {
        "type": "object",
        "description": f"One [rows, {schema.width}] tensor in feature order (documented here "
        "for one row; any number of rows, INT/UINT datatypes and one tensor per feature are "
        "accepted too)",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"type": "string", "not": {"enum": names}},
                        "shape": {"const": [1, schema.width]},
                        "datatype": {"enum": float_types},
                        "data": row,
                        "parameters": {"type": "object"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": ["predict", "probability"] if classifier else ["predict"]},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    }
    v1_body = {
        "description": "KServe V1: the instances as records or rows (inputs is a synonym)",
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: {"oneOf": [records, rows]}},
                "additionalProperties": False,
            }
            for key in ("instances", "inputs")
        ],
    }
    return {
        _component("V1Request", model.name): v1_body,
        _component("PredictRequest", model.name): json_body,
        _component("PredictCsv", model.name): csv_body,
        _component("InferRequest", model.name): infer,
    }


def build_spec(st: ServerState) -> dict[str, Any]:
    """The OpenAPI 3.1 document for this server and its loaded models."""
    registry = st.registry
    names = sorted(registry.models) or [registry.default_model]
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "Model name",
        "schema": {"type": "string", "enum": names},
    }
    default = registry.models.get(registry.default_model)
    number = {"type": "number"}
    predictions = {
        "type": "array",
        "items": {"oneOf": [{"type": "string"}, number]},
        "description": "Answer label per row (classifiers, e.g. yes/no) or value (regression)",
    }
    status_body = {"type": "object", "properties": {"status": {"type": "string"}}}
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": list(ERROR_CODES)},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                }
            },
        },
        "PlumberAnswer": {
            "type": "object",
            "required": ["Answer"],
            "properties": {"Answer": predictions},
            "description": "Classifiers answer a label; regression a value rounded to 4 places",
        },
        "PredictResponse": {
            "type": "object",
            "required": ["model", "version", "predictions"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "string"},
                "predictions": predictions,
                "probabilities": {
                    "type": "array",
                    "items": number,
                    "description": "Classifiers only: probability of the positive class per row",
                },
            },
        },
        "InvocationsResponse": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": predictions},
        },
        "ModelSummary": {
            "type": "object",
            "required": ["name", "version", "task", "features", "sha256"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "task": {"type": "string", "enum": ["classification", "regression"]},
                "features": {"type": "array", "items": {"type": "string"}},
                "sha256": {"type": "string"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["default_model", "models"],
            "properties": {
                "default_model": {"type": "string"},
                "models": {"type": "array", "items": ref("ModelSummary")},
                "failed_models": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Manifest": {
            "type": "object",
            "required": ["name", "version", "task", "features", "artifact", "training_data"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "task": {"type": "string"},
                "features": {"type": "array", "items": {"type": "object"}},
                "artifact": {"type": "object"},
                "training_data": {"type": "object"},
                "metrics": {"type": "object"},
                "threshold": number,
            },
        },
        "Ready": {
            "type": "object",
            "required": ["status", "models", "default_model"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not ready"]},
                "models": {"type": "array", "items": {"type": "string"}},
                "default_model": {"type": "string"},
                "failed_models": {"type": "array", "items": {"type": "string"}},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "datatype", "shape", "data"],
                        "properties": {
                            "name": {"type": "string"},
                            "datatype": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "data": {"type": "array"},
                        },
                    },
                },
            },
        },
        "ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": {"type": "string"},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": {"type": "object"}},
                "outputs": {"type": "array", "items": {"type": "object"}},
                "parameters": {"type": "object"},
            },
        },
    }

    def predict_body(model: str) -> dict[str, Any]:
        if model not in registry.models:  # not loaded: any body gets 503
            return {"required": True, "content": {"application/json": {"schema": {}}}}
        return {
            "required": True,
            "content": {
                "application/json": {"schema": ref(_component("PredictRequest", model))},
                "text/csv": {"schema": ref(_component("PredictCsv", model))},
            },
        }

    def get(summary: str, tag: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"get": {"summary": summary, "tags": [tag], "responses": responses, **extra}}

    ok_status = json_content(status_body, "OK")
    not_ready = json_content(status_body, "Not ready")

    def query_params(model: LoadedModel | None) -> list[dict[str, Any]]:
        if model is None:
            return []
        return [
            {
                "name": f.name,
                "in": "query",
                "required": True,
                "description": f.description,
                "schema": _feature_schema(f),
            }
            for f in model.bundle.schema.features
        ]

    paths: dict[str, Any] = {
        "/predict_data": get(
            f"Plumber-compatible prediction on the default model ({registry.default_model})",
            "plumber",
            {
                "200": json_content(ref("PlumberAnswer"), "Prediction"),
                **errors("Error", 400, 422, 503),
            },
            parameters=query_params(default),
        ),
        "/models": get(
            "List the loaded models", "models", {"200": json_content(ref("ModelList"), "OK")}
        ),
        "/models/{name}": get(
            "The model's manifest",
            "models",
            {"200": json_content(ref("Manifest"), "Manifest"), **errors("Error", 404, 503)},
            parameters=[name_param],
        ),
        "/ping": get("SageMaker health check", "sagemaker", {"200": ok_status, "503": not_ready}),
        "/invocations": {
            "post": {
                "summary": "SageMaker and MLflow scoring (CSV rows or MLflow/plain JSON)",
                "tags": ["sagemaker", "mlflow"],
                "description": "The body below is the default model's. With the header "
                "X-Amzn-SageMaker-Target-Model: <name>, the body is that model's (see "
                f"/models/<name>/predict); names: {', '.join(names)}.",
                "parameters": [
                    {
                        "name": "X-Amzn-SageMaker-Target-Model",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "enum": ["", registry.default_model]},
                        "description": "Model name (absent or empty: "
                        f"{registry.default_model}); any loaded model, see the description",
                    }
                ],
                "requestBody": predict_body(registry.default_model),
                "responses": {
                    "200": {
                        "description": "Predictions (CSV lines if Accept prefers text/csv)",
                        "content": {
                            "application/json": {"schema": ref("InvocationsResponse")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **errors("Error", 400, 404, 413, 415, 422, 503),
                },
            }
        },
        "/health": get("MLflow health check", "mlflow", {"200": ok_status, "503": not_ready}),
        "/version": get(
            "Server version (MLflow route)",
            "mlflow",
            {
                "200": json_content(
                    {"type": "object", "properties": {"version": {"type": "string"}}}, "OK"
                )
            },
        ),
        "/healthz": get("Liveness", "health", {"200": ok_status}),
        "/readyz": get(
            "Readiness: every model loaded and verified",
            "health",
            {
                "200": json_content(ref("Ready"), "Ready"),
                "503": json_content(ref("Ready"), "Not ready"),
            },
        ),
        "/metrics": get(
            "Prometheus metrics (text exposition format)",
            "health",
            {
                "200": {
                    "description": "OK",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": get(
            "This OpenAPI document", "docs", {"200": json_content({"type": "object"}, "OK")}
        ),
        "/docs": get(
            "Human-readable API documentation",
            "docs",
            {
                "200": {
                    "description": "OK",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        ),
    }
    # The model routes whose input depends on the model are documented once per model (above
    # the template: OpenAPI matches concrete paths first). The template itself then only
    # answers names that are not loaded models: 404.
    unknown_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "Not a loaded model (each model has its own operations above)",
        "schema": {"type": "string", "not": {"enum": names}},
    }
    unknown = {
        "404": json_content(ref("Error"), "Unknown model"),
        # A loaded model's name is served by its own operation; these are its refusals.
        **errors("Error", 400, 413, 415, 422),
    }
    for template, method in (
        ("/models/{name}/predict_data", "get"),
        ("/models/{name}/predict", "post"),
    ):
        paths[template] = {
            method: {
                "summary": "Any name that is not a loaded model",
                "tags": ["models"],
                "parameters": [unknown_param],
                "responses": unknown,
            }
        }
    for name, model in sorted(registry.models.items()):
        paths[f"/models/{name}/predict_data"] = get(
            f"Plumber-compatible prediction on {name}; one query parameter per feature",
            "plumber",
            {"200": json_content(ref("PlumberAnswer"), "Prediction"), **errors("Error", 400, 422)},
            parameters=query_params(model),
        )
        paths[f"/models/{name}/predict"] = {
            "post": {
                "summary": f"Predict {name}: a record, a batch, columns or CSV rows",
                "tags": ["predict"],
                "requestBody": predict_body(name),
                "responses": {
                    "200": json_content(ref("PredictResponse"), "Predictions"),
                    **errors("Error", 400, 413, 415, 422),
                },
            }
        }
        schemas.update(model_schemas(model, st.settings.max_rows))
    paths.update(kserve_paths(registry, _component))
    schemas.update(kserve_schemas())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ModelFleet model server",
            "version": __version__,
            "description": "scikit-learn models behind plumber, JSON, SageMaker, MLflow, "
            "KServe V1 and Open Inference Protocol v2 APIs. Every error is "
            '`{"error": {"code", "message", "field"?}}`, except on the KServe V1 and OIP v2 '
            'routes (`/v1/...`, `/v2/...`), whose specifications fix it as `{"error": '
            '"<code>: <message>"}`; every response carries `X-Served-By` and echoes '
            "`X-Request-ID`.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }


# --------------------------------------------------------------------------------------------
# HTML rendering


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
                for p in params:
                    required = " (required)" if p.get("required") else ""
                    desc = e(p.get("description", ""))
                    parts.append(
                        f"<li><code>{e(p['name'])}</code> in {e(p['in'])}{required} {desc}</li>"
                    )
                parts.append("</ul>")
            body = op.get("requestBody")
            if body:
                types = ", ".join(body["content"])
                parts.append(f"<p>Request body: {e(types)}</p>")
            statuses = ", ".join(
                f"{code} {r['description']}" for code, r in op["responses"].items()
            )
            parts.append(f"<p>Responses: {e(statuses)}</p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in spec["components"]["schemas"].items():
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()
        parts.append(f"<h3 id='{e(name)}'>{e(name)}</h3><pre>{e(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
