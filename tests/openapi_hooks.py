"""schemathesis hooks: what the OpenAPI document says in words because JSON Schema cannot.

Two constraints of the model server tie one part of a request to another, which JSON Schema
cannot express; the document states both in its descriptions:

* an OIP v2 tensor's ``shape[0]`` is the number of rows in its ``data``;
* the body of ``POST /invocations`` is the model's that ``X-Amzn-SageMaker-Target-Model``
  names (absent or empty: the default model), while the schema admits any loaded model's body.

Cases generated as valid (positive mode) are completed here so that they hold; the document
stays as wide as the server. Negative cases are left alone: they are invalid anyway, and the
server must refuse them. Loaded with ``SCHEMATHESIS_HOOKS=tests.openapi_hooks`` (stack test)
or by import (in-process conformance test).
"""

from __future__ import annotations

import copy
from typing import Any

import schemathesis
from jsonschema_rs import Draft202012Validator
from schemathesis import GenerationMode

TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
_BODY_KINDS = {"application/json": "PredictRequest", "text/csv": "PredictCsv"}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Complete a positive case's cross-field constraints (see the module docstring)."""
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if case.operation.method.lower() != "post":
        return case
    if case.operation.path.endswith("/infer"):
        # A copy: generated cases share parts of their bodies (the coverage phase derives
        # each from another), so changing one in place would change others already sent.
        case.body = copy.deepcopy(case.body)
        _count_rows(case.body)
    elif case.operation.path == "/invocations":
        _name_body_model(case)
    return case


def _count_rows(body: Any) -> None:
    """Set each tensor's ``shape[0]`` to its data's rows (nested data) or 1 (one flat row).

    One tensor per feature (a model with string features; shape ``[rows]``): every tensor's
    data is cut to the shortest one's length, the rows they must share.
    """
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        return
    per_feature = [
        t
        for t in body["inputs"]
        if isinstance(t, dict)
        and isinstance(t.get("shape"), list)
        and len(t["shape"]) == 1
        and isinstance(t.get("data"), list)
        and t["data"]
    ]
    if per_feature:
        rows = min(len(t["data"]) for t in per_feature)
        for t in per_feature:
            t["data"], t["shape"][0] = t["data"][:rows], rows
        return
    for tensor in body["inputs"]:
        if not isinstance(tensor, dict):
            continue
        shape, data = tensor.get("shape"), tensor.get("data")
        if isinstance(shape, list) and shape and isinstance(data, list) and data:
            nested = isinstance(data[0], list)
            shape[0] = len(data) if nested else 1


def _name_body_model(case: Any) -> None:
    """Name, in the target-model header, a model whose schema the body matches."""
    kind = _BODY_KINDS.get(case.media_type or "")
    if kind is None:
        return
    spec = case.operation.schema.raw_schema
    header = next(
        p for p in case.operation.definition.raw["parameters"] if p["name"] == TARGET_MODEL
    )
    models = [m for m in header["schema"]["enum"] if m]
    headers = dict(case.headers or {})
    named = headers.get(TARGET_MODEL) or header["schema"]["default"]
    matching = [m for m in models if _matches(spec, f"{kind}_{_suffix(m)}", case.body)]
    if matching and named not in matching:
        headers[TARGET_MODEL] = matching[0]
        case.headers = headers


def _matches(spec: dict[str, Any], component: str, body: Any) -> bool:
    """Whether ``body`` is valid for the component schema ``component`` of ``spec``."""
    root = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    return bool(Draft202012Validator(root).is_valid(body))


def _suffix(model: str) -> str:
    """The component name suffix of a model (``openapi_models.component``)."""
    return "".join(c if c.isalnum() else "_" for c in model)
