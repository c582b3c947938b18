"""The model-dependent parts of the OpenAPI document, built from the loaded models.

Everything else is data: ``openapi_*.json`` beside this module (see ``docs``). What is built
here depends on a model's features (names, ranges, allowed values) or on the settings
(``MODELFLEET_MAX_ROWS``): the request schemas and the per-model operations.

A string (categorical) feature is ``{"type": "string", "enum": [categories]}`` everywhere, and
a ``BYTES`` tensor of its own on OIP v2. A classifier that answers per-class probabilities gets
its own response schema naming its classes. The seed models' documents are unchanged
(``tests/unit/test_recorded_responses.py`` holds their sha256).
"""

from __future__ import annotations

from typing import Any

from model_server.api.oip_tensors import TENSOR_FLOAT_TYPES
from model_server.api.oip_v2 import output_names
from model_server.api.openapi_features import (
    csv_cell_regex,
    csv_example,
    example_value,
    feature_schema,
)
from model_server.core.registry import LoadedModel

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


def _infer_inputs(model: LoadedModel, max_rows: int, rows: Any, row: Any) -> dict[str, Any]:
    """The ``inputs`` of an OIP v2 request: one matrix tensor, or one tensor per feature for
    a model with string features (BYTES for those)."""
    schema = model.bundle.schema
    names = list(schema.names)
    if not schema.strings:
        return {
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
                    "datatype": {"enum": sorted(TENSOR_FLOAT_TYPES)},
                    "data": {
                        "description": "The rows: nested, or flat for one row",
                        "oneOf": [rows, row],
                    },
                    "parameters": {"type": "object"},
                },
            },
        }
    numeric = sorted(TENSOR_FLOAT_TYPES)  # INT types take integers only: described, not typed
    tensors = [
        {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"const": f.name},
                "shape": {
                    "type": "array",
                    "prefixItems": [{"type": "integer", "minimum": 1, "maximum": max_rows}],
                    "minItems": 1,
                    "maxItems": 1,
                },
                "datatype": {"const": "BYTES"} if f.is_string else {"enum": numeric},
                "data": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_rows,
                    "items": feature_schema(f),
                },
                "parameters": {"type": "object"},
            },
        }
        for f in schema.features
    ]
    return {
        "type": "array",
        # Any order is accepted; one order is what JSON Schema can say (each feature once).
        "description": "One tensor per feature (any order is accepted; shown in feature order)",
        "minItems": schema.width,
        "maxItems": schema.width,
        "prefixItems": tensors,
        "items": False,
    }


def response_schema(model: LoadedModel) -> dict[str, Any]:
    """``POST /models/<name>/predict``'s answer for a classifier with per-class
    probabilities: its answer labels, and one map of them to probabilities per row."""
    labels = list(model.predictor.class_labels)
    return {
        "type": "object",
        "required": ["model", "version", "predictions", "probabilities"],
        "properties": {
            "model": {"const": model.name},
            "version": {"const": model.bundle.version},
            "predictions": {
                "type": "array",
                "items": {"enum": labels},
                "description": "The estimator's answer per row",
            },
            "probabilities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": labels,
                    "properties": {
                        c: {"type": "number", "minimum": 0, "maximum": 1} for c in labels
                    },
                    "additionalProperties": False,
                },
                "description": "Per row, each class's probability (predict_proba)",
            },
        },
    }


def schema_key(model: LoadedModel, current: bool) -> str:
    """What a model version's component names end in: the model's name for its current
    version, ``<name>_v<version>`` for the others (features may differ between versions)."""
    return model.name if current else f"{model.name}_v{model.version}"


def model_schemas(model: LoadedModel, max_rows: int, key: str) -> dict[str, Any]:
    """Exact request schemas of one model version: what the server accepts, feature by
    feature, as components named after ``key`` (``schema_key``).

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
    cell = [csv_cell_regex(f) for f in schema.features]
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
    infer_text = (
        f"One [rows, {schema.width}] tensor in feature order, 1 to {max_rows} "
        "rows. JSON Schema cannot tie the shape to the data: shape[0] must be the number of "
        "rows in data. Also accepted, not expressed by the schema: data flat in row-major "
        "order for any number of rows, INT/UINT datatypes with integer data, and one tensor "
        "per feature (named after it, shape [rows] or [rows, 1])."
    )
    if schema.strings:
        infer_text = (
            f"One tensor per feature, named after it, shape [rows], 1 to {max_rows} rows: "
            "BYTES for the string features, FP64/FP32/FP16 for the others. JSON Schema cannot "
            "tie the shapes to the data. Also accepted, not expressed by the schema: shape "
            "[rows, 1], INT/UINT datatypes with integer data, tensors in any order."
        )
    infer = {
        "type": "object",
        "description": infer_text,
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": _infer_inputs(model, max_rows, rows, row),
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": list(output_names(model))},
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
    schemas = {
        component("V1Request", key): v1_body,
        component("PredictRequest", key): json_body,
        component("PredictCsv", key): csv_body,
        component("InferRequest", key): infer,
    }
    if model.predictor.per_class:
        schemas[component("PredictResponse", key)] = response_schema(model)
    return schemas


def body_examples(model: LoadedModel) -> dict[str, Any]:
    """One valid body per kind of request (``PredictRequest``, ``PredictCsv``, ``InferRequest``,
    ``V1Request``), for readers and for schemathesis' examples phase.

    They go on each operation's media type, not on the shared schemas: ``/invocations``
    refers to every model's schemas, and its examples must be the default model's.
    """
    schema = model.bundle.schema
    values = [example_value(f) for f in schema.features]
    tensors = [
        {"name": "input-0", "shape": [1, schema.width], "datatype": "FP64", "data": [values]}
    ]
    if schema.strings:
        tensors = [
            {
                "name": f.name,
                "shape": [1],
                "datatype": "BYTES" if f.is_string else "FP64",
                "data": [v],
            }
            for f, v in zip(schema.features, values, strict=True)
        ]
    return {
        "PredictRequest": dict(zip(schema.names, values, strict=True)),
        "PredictCsv": ",".join(csv_example(v) for v in values) + "\n",
        "InferRequest": {"inputs": tensors},
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


def predict_body(model: LoadedModel, key: str) -> dict[str, Any]:
    """The request body of a prediction on ``model``: its JSON and CSV schemas."""
    examples = body_examples(model)
    return {
        "required": True,
        "content": {
            media: {"schema": ref(component(kind, key)), "example": examples[kind]}
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


def model_paths(model: LoadedModel, key: str, versioned: bool) -> dict[str, Any]:
    """ModelFleet's own per-model operations (plumber and JSON prediction) of ``model``: on
    ``/models/<name>/`` (its current version) or, ``versioned``, on
    ``/models/<name>/versions/<version>/``."""
    name = model.name
    base = f"/models/{name}/versions/{model.version}" if versioned else f"/models/{name}"
    what = f"{name} version {model.version}" if versioned else name
    return {
        f"{base}/predict_data": {
            "get": {
                "summary": f"Plumber-compatible prediction on {what}; one query parameter per "
                "feature",
                "tags": ["plumber"],
                "responses": {
                    "200": json_content(ref("PlumberAnswer"), "Prediction"),
                    **errors("Error", 400, 422),
                },
                "parameters": query_params(model),
            }
        },
        f"{base}/predict": {
            "post": {
                "summary": f"Predict {what}: a record, a batch, columns or CSV rows",
                "tags": ["predict"],
                "requestBody": predict_body(model, key),
                "responses": {
                    "200": json_content(
                        ref(component("PredictResponse", key))
                        if model.predictor.per_class
                        else ref("PredictResponse"),
                        "Predictions",
                    ),
                    **errors("Error", 400, 413, 415, 422),
                },
            }
        },
    }
