"""The model-dependent parts of the OpenAPI document, built from the loaded models.

Everything else is data: ``openapi_*.json`` beside this module (see ``docs``). What is built
here depends on a model's features (names, ranges, allowed values) or on the settings
(``MODELFLEET_MAX_ROWS``): the request schemas and the per-model operations.
"""

from __future__ import annotations

from typing import Any

from model_server.api.oip_tensors import TENSOR_FLOAT_TYPES
from model_server.core.registry import LoadedModel
from model_server.core.schema import Feature

#: The media types of a prediction body, with the kind of component schema of each.
_PREDICT_MEDIA = (("application/json", "PredictRequest"), ("text/csv", "PredictCsv"))


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response (or body) of ``schema`` as ``application/json``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(schema: str, *statuses: int) -> dict[str, Any]:
    """The documented refusals ``statuses``, each with the error body ``schema``.

    Each is a shared response of the static document (``Error400``, ``MessageError422``...).
    """
    return {str(s): {"$ref": f"#/components/responses/{schema}{s}"} for s in statuses}


def component(kind: str, model: str) -> str:
    """Component name of a model's schema (letters, digits and ``_`` only)."""
    return kind + "_" + "".join(c if c.isalnum() else "_" for c in model)


def feature_schema(f: Feature) -> dict[str, Any]:
    if f.allowed is not None:
        return {"enum": [int(v) if v.is_integer() else v for v in f.allowed]}
    return {"type": "number", "minimum": f.min, "maximum": f.max}


def example_value(f: Feature) -> float:
    """A value ``f`` accepts, for examples: its first allowed value, or its range's middle."""
    if f.allowed is not None:
        return int(f.allowed[0]) if f.allowed[0].is_integer() else f.allowed[0]
    middle = round((f.min + f.max) / 2, 2)
    return int(middle) if middle.is_integer() else middle


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
    features = [feature_schema(f) for f in schema.features]
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
        "description": f"1 to {max_rows} CSV rows in feature order ({', '.join(names)}), "
        "optionally after a header line naming the features; more rows are refused (413). "
        "The pattern cannot count that many rows (a regex repeated thousands of times is too "
        "large for common JSON Schema validators). Also accepted, not expressed by the "
        "pattern: the header's features in any order (the rows then follow it), other "
        "spellings of the same numbers (1e2, +5), and CRLF line ends.",
        "pattern": f"^(?:{','.join(names)}\n)?{line}(?:\n{line})*\n?$",
    }
    classifier = model.bundle.task == "classification"
    float_types = sorted(TENSOR_FLOAT_TYPES)
    infer = {
        "type": "object",
        "description": f"One [rows, {schema.width}] tensor in feature order, 1 to {max_rows} "
        "rows. JSON Schema cannot tie the shape to the data: shape[0] must be the number of "
        "rows in data. Also accepted, not expressed by the schema: data flat in row-major "
        "order for any number of rows, INT/UINT datatypes with integer data, and one tensor "
        "per feature (named after it, shape [rows] or [rows, 1]).",
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
                        "shape": {
                            "type": "array",
                            "prefixItems": [
                                {"type": "integer", "minimum": 1, "maximum": max_rows},
                                {"const": schema.width},
                            ],
                            "minItems": 2,
                            "maxItems": 2,
                        },
                        "datatype": {"enum": float_types},
                        "data": {
                            "description": "The rows: nested, or flat for one row",
                            "oneOf": [rows, row],
                        },
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
        component("V1Request", model.name): v1_body,
        component("PredictRequest", model.name): json_body,
        component("PredictCsv", model.name): csv_body,
        component("InferRequest", model.name): infer,
    }


def body_examples(model: LoadedModel) -> dict[str, Any]:
    """One valid body per kind of request (``PredictRequest``, ``PredictCsv``, ``InferRequest``,
    ``V1Request``), for readers and for schemathesis' examples phase.

    They go on each operation's media type, not on the shared schemas: ``/invocations``
    refers to every model's schemas, and its examples must be the default model's.
    """
    schema = model.bundle.schema
    values = [example_value(f) for f in schema.features]
    tensor = {"name": "input-0", "shape": [1, schema.width], "datatype": "FP64", "data": [values]}
    return {
        "PredictRequest": dict(zip(schema.names, values, strict=True)),
        "PredictCsv": ",".join(f"{v:g}" for v in values) + "\n",
        "InferRequest": {"inputs": [tensor]},
        "V1Request": {"instances": [values]},
    }


def query_params(model: LoadedModel) -> list[dict[str, Any]]:
    """The plumber route's query: one required parameter per feature of ``model``."""
    return [
        {
            "name": f.name,
            "in": "query",
            "required": True,
            "description": f.description,
            "schema": feature_schema(f),
            "example": example_value(f),
        }
        for f in model.bundle.schema.features
    ]


def predict_body(model: LoadedModel) -> dict[str, Any]:
    """The request body of a prediction on ``model``: its JSON and CSV schemas."""
    examples = body_examples(model)
    return {
        "required": True,
        "content": {
            media: {"schema": ref(component(kind, model.name)), "example": examples[kind]}
            for media, kind in _PREDICT_MEDIA
        },
    }


def invocations_body(names: list[str], default: LoadedModel | None) -> dict[str, Any]:
    """The body of ``POST /invocations``: any loaded model's body (the header picks the model).

    The examples are the default model's (no header). With no model loaded, any body is
    documented: the server answers 503.
    """
    if not names:
        return {"required": True, "content": {"application/json": {"schema": {}}}}
    examples = body_examples(default) if default is not None else {}
    content: dict[str, Any] = {}
    for media, kind in _PREDICT_MEDIA:
        content[media] = {"schema": {"anyOf": [ref(component(kind, n)) for n in names]}}
        if kind in examples:
            content[media]["example"] = examples[kind]
    return {"required": True, "content": content}


def model_paths(model: LoadedModel) -> dict[str, Any]:
    """ModelFleet's own per-model operations (plumber and JSON prediction) of ``model``."""
    name = model.name
    return {
        f"/models/{name}/predict_data": {
            "get": {
                "summary": f"Plumber-compatible prediction on {name}; one query parameter per "
                "feature",
                "tags": ["plumber"],
                "responses": {
                    "200": json_content(ref("PlumberAnswer"), "Prediction"),
                    **errors("Error", 400, 422),
                },
                "parameters": query_params(model),
            }
        },
        f"/models/{name}/predict": {
            "post": {
                "summary": f"Predict {name}: a record, a batch, columns or CSV rows",
                "tags": ["predict"],
                "requestBody": predict_body(model),
                "responses": {
                    "200": json_content(ref("PredictResponse"), "Predictions"),
                    **errors("Error", 400, 413, 415, 422),
                },
            }
        },
    }
