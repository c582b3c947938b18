"""Open Inference Protocol v2 input tensors as the model's feature matrix.

Protocol code beside its adapter (``oip_v2``), on top of the prediction core's value checks:
one tensor of shape ``[N, n_features]`` in feature order, or one tensor per feature named
after it with shape ``[N]`` or ``[N, 1]``; JSON ``data`` or already-decoded arrays from the
binary extension (``oip_binary``).

A model with string (categorical) features takes one tensor per feature: ``BYTES`` for each
string feature (JSON strings, or the binary extension's length-prefixed UTF-8), a numeric
datatype for the others. The one-matrix form is for all-numeric models: a BYTES matrix would
carry numbers as text, which every other route refuses.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from model_server.core.errors import RequestError
from model_server.core.parsing.values import (
    INT_ONLY,
    NUMERIC_TYPES,
    check_count,
    check_names,
    describe,
    validate,
)
from model_server.core.schema import Schema

#: OIP v2 numeric datatypes; BOOL is refused, and BYTES except for a string feature.
TENSOR_FLOAT_TYPES: Final = frozenset({"FP16", "FP32", "FP64"})
TENSOR_INT_TYPES: Final = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


def _flatten(data: Any, name: str) -> list[Any]:
    """Row-major flattening of a (possibly nested) tensor ``data`` array, without recursion."""
    if type(data) is not list:
        raise RequestError("malformed_body", f"tensor {name!r}: data must be an array", field=name)
    if not any(type(v) is list for v in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _tensor(
    spec: Any, index: int, max_rows: int, strings: frozenset[str] = frozenset()
) -> tuple[str, list[int], np.ndarray]:
    """Validate one OIP input tensor; return its name, shape and values as float64 (flat), or
    as objects for a BYTES tensor named in ``strings`` (its values are checked by
    ``validate``)."""
    if type(spec) is not dict:
        raise RequestError("malformed_body", f"inputs[{index}] must be a tensor object")
    name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
    if type(name) is not str:
        raise RequestError("malformed_body", f"inputs[{index}].name must be a string")
    if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(
            "malformed_body", f"tensor {name!r}: shape must be a list of sizes", field=name
        )
    if type(datatype) is not str:
        raise RequestError("malformed_body", f"tensor {name!r}: datatype is missing", field=name)
    if "parameters" in spec and type(spec["parameters"]) is not dict:
        raise RequestError(
            "malformed_body", f"tensor {name!r}: parameters must be an object", field=name
        )
    as_text = datatype == "BYTES" and name in strings
    if not as_text and datatype not in TENSOR_FLOAT_TYPES and datatype not in TENSOR_INT_TYPES:
        raise RequestError(
            "non_numeric",
            f"tensor {name!r}: datatype {describe(datatype)} is not numeric; use FP64, FP32 "
            "or an INT/UINT type",
            field=name,
        )
    check_count(shape[0], max_rows)
    size = 1
    for d in shape:
        size *= d
    if size > max_rows * 1024:  # no tensor of ours is that wide: refuse before flattening
        raise RequestError(
            "malformed_body", f"tensor {name!r}: shape {shape} is too large", field=name
        )
    data = spec.get("data")
    if isinstance(data, np.ndarray):
        # Already decoded from the binary tensor extension, in the tensor's own datatype.
        if data.size != size:
            raise RequestError(
                "malformed_body",
                f"tensor {name!r}: shape {shape} needs {size} values, data has {data.size}",
                field=name,
            )
        return name, shape, data if as_text else data.astype(np.float64)
    flat = _flatten(data, name)
    if len(flat) != size:
        raise RequestError(
            "malformed_body",
            f"tensor {name!r}: shape {shape} needs {size} values, data has {len(flat)}",
            field=name,
        )
    if as_text:
        text = np.empty(len(flat), dtype=object)
        text[:] = flat
        return name, shape, text
    integer = datatype in TENSOR_INT_TYPES
    allowed = INT_ONLY if integer else NUMERIC_TYPES
    for i, v in enumerate([] if set(map(type, flat)) <= allowed else flat):
        t = type(v)
        if t is not int and (integer or t is not float):
            raise RequestError(
                "non_numeric",
                f"tensor {name!r}: element {i} must be {'an integer' if integer else 'a number'}"
                f" for {datatype}, got {describe(v)}",
                field=name,
            )
    try:
        values = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise RequestError(
            "non_finite", f"tensor {name!r}: a value is too large", field=name
        ) from None
    return name, shape, values


def parse_tensors(inputs: Any, schema: Schema, max_rows: int) -> np.ndarray:
    """OIP v2 ``inputs``: one ``[N, n_features]`` tensor, or one ``[N]``/``[N, 1]`` per feature.

    A single tensor whose name is not a feature name is the matrix form (its name is free, e.g.
    ``input-0``); otherwise every tensor must be named after a feature.
    """
    if type(inputs) is not list or not inputs:
        raise RequestError("malformed_body", "inputs must be a non-empty array of tensors")
    first_name = inputs[0].get("name") if type(inputs[0]) is dict else None
    if len(inputs) == 1 and not (type(first_name) is str and first_name in schema.name_set):
        name, shape, values = _tensor(inputs[0], 0, max_rows)
        if schema.strings:
            strings = ", ".join(f.name for _, f, _ in schema.strings)
            raise RequestError(
                "malformed_body",
                f"this model has string features ({strings}): send one tensor per feature, "
                "named after it, BYTES for the string features",
                field=name,
            )
        if len(shape) != 2:
            raise RequestError(
                "wrong_width",
                f"tensor {name!r}: shape {shape} must be [rows, {schema.width}]",
                field=name,
            )
        if shape[1] != schema.width:
            raise RequestError(
                "wrong_width",
                f"tensor {name!r} has {shape[1]} columns; expected {schema.width} "
                f"({', '.join(schema.names)})",
                field=name,
            )
        return validate(values.reshape(shape), schema)
    columns: dict[str, np.ndarray] = {}
    n_rows: int | None = None
    for i, spec in enumerate(inputs):
        name, shape, values = _tensor(spec, i, max_rows, schema.string_names)
        if name in columns:
            raise RequestError("malformed_body", f"tensor {name!r} is given twice", field=name)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise RequestError(
                "wrong_width",
                f"tensor {name!r}: shape {shape} must be [rows] or [rows, 1]",
                field=name,
            )
        if n_rows is not None and shape[0] != n_rows:
            raise RequestError(
                "malformed_body",
                "all feature tensors must have the same number of rows",
                field=name,
            )
        n_rows = shape[0]
        columns[name] = values
    check_names(columns.keys(), schema, "inputs")
    x = np.empty((n_rows or 0, schema.width), dtype=object if schema.strings else np.float64)
    for j, name in enumerate(schema.names):
        x[:, j] = columns[name]
    return validate(x, schema)
