"""Turn request payloads into a float64 matrix in the model's feature order.

Every parser here either returns a C-contiguous ``(n_rows, n_features)`` float64 array that
has passed ``validate`` (finite, inside the manifest ranges) or raises ``RequestError``.
No other exception may escape for any input: the hypothesis tests in
``tests/unit/test_parsing_properties.py`` hold the module to that.

Design notes:

* No pandas: building a DataFrame per request costs far more than the prediction itself.
  Rows are assembled as Python lists in feature order and converted with one ``np.array``.
* Two speeds, one result. Batches first try a fast path made of C-level loops (``map``,
  ``itemgetter``, ``set`` of types, ``np.fromiter``; CSV is handed to orjson's number parser)
  that only *accepts* input that is well-formed everywhere. Anything it does not accept is
  parsed again by the exact per-row path below, which finds and names the first problem. So
  the fast path changes the cost, never the answer or the error; single rows skip numpy's
  per-call overhead in ``validate`` (``Schema.row_ok``) the same way.
* JSON values must be JSON numbers. Strings such as ``"1.5"`` and booleans are refused
  (``non_numeric``) rather than coerced, so a client bug cannot silently become a prediction.
  Text formats (CSV, query strings) are parsed with a strict ASCII number grammar: Python's
  ``float()`` alone would also accept ``1_000`` and non-ASCII digits.
* Row numbers in messages are 0-based, like JSON array indices.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson

from model_server.core.errors import RequestError
from model_server.core.schema import Schema

#: Top-level keys of the MLflow / TF-serving style JSON bodies (``params`` may accompany one).
PAYLOAD_KEYS: Final[frozenset[str]] = frozenset(
    {"instances", "inputs", "dataframe_split", "dataframe_records"}
)

# A decimal number, or nan/inf spelled out (accepted by the grammar so they are reported as
# ``non_finite`` rather than ``non_numeric``).
_NUMBER_RE: Final = re.compile(
    r"\s*[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*",
    re.ASCII | re.IGNORECASE,
)
# Text made only of these characters can go straight to numpy's converter (fast path); any
# other character sends the rows through the per-cell grammar check.
_FAST_TEXT_RE: Final = re.compile(r"[0-9eE+\-. \t\r\n,]*", re.ASCII)
_NUMERIC_TYPES: Final = frozenset({int, float})
_INT_ONLY: Final = frozenset({int})


# --------------------------------------------------------------------------------------------
# Helpers


def _describe(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _check_count(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise RequestError("empty_batch", "the request contains no rows")
    if n_rows > max_rows:
        raise RequestError(
            "too_many_rows", f"the request has {n_rows} rows; at most {max_rows} are allowed"
        )


def _check_names(given: Iterable[str], schema: Schema, where: str) -> None:
    """Refuse unknown names first (likely typos), then missing ones, naming the feature."""
    given_set = set(given)
    for name in given:
        if name not in schema.name_set:
            raise RequestError(
                "unknown_feature",
                f"{where}: unknown feature {_describe(name)}; expected {', '.join(schema.names)}",
                field=str(name),
            )
    for name in schema.names:
        if name not in given_set:
            raise RequestError("missing_feature", f"{where}: missing feature {name!r}", field=name)


def _parse_text_number(text: str, row: int, name: str) -> float:
    if _NUMBER_RE.fullmatch(text) is None:
        raise RequestError(
            "non_numeric",
            f"row {row}: {name} must be a number, got {_describe(text)}",
            field=name,
        )
    return float(text)


def _check_json_numbers(row: Sequence[Any], r: int, names: Sequence[str]) -> None:
    for j, v in enumerate(row):
        if type(v) not in _NUMERIC_TYPES:  # type(), not isinstance: bool is an int subclass
            raise RequestError(
                "non_numeric",
                f"row {r}: {names[j]} must be a number, got {_describe(v)}",
                field=names[j],
            )


def _to_array(rows: list[list[Any]], names: Sequence[str]) -> np.ndarray:
    """Convert rows of JSON numbers (already type-checked) to float64."""
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError:
        # An integer too large for float64 (JSON allows arbitrary integers).
        for r, row in enumerate(rows):
            for j, v in enumerate(row):
                try:
                    float(v)
                except OverflowError:
                    raise RequestError(
                        "non_finite", f"row {r}: {names[j]} is too large", field=names[j]
                    ) from None
        raise  # pragma: no cover - unreachable: some value overflowed above


def _numbers_matrix(rows: Sequence[Sequence[Any]], width: int) -> np.ndarray | None:
    """Fast path: rows of exactly ``width`` JSON numbers as float64, else ``None``.

    The caller has checked every row's length. ``None`` (a non-number somewhere, or an integer
    too large for float64) sends the request through the exact per-row path.
    """
    if not set(map(type, chain.from_iterable(rows))) <= _NUMERIC_TYPES:
        return None
    try:
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    except OverflowError:
        return None
    return flat.reshape(len(rows), width)


def validate(x: np.ndarray, schema: Schema) -> np.ndarray:
    """Check a parsed matrix against the schema: finite values inside the manifest ranges.

    Returns ``x`` unchanged (for chaining); raises ``RequestError`` naming the first bad cell.
    """
    if len(x) == 1 and schema.row_ok(x[0].tolist()):
        return x  # one valid row: proven without numpy's per-call overhead
    finite = np.isfinite(x)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise RequestError(
            "non_finite",
            f"row {r}: {schema.names[c]} must be finite, got {x[r, c]}",
            field=schema.names[c],
        )
    bad = (x < schema.lows) | (x > schema.highs)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        f = schema.features[c]
        raise RequestError(
            "out_of_range",
            f"row {r}: {f.name}={x[r, c]:g} is outside the valid range [{f.min:g}, {f.max:g}]",
            field=f.name,
        )
    for c, allowed in schema.categorical:
        bad_col = ~np.isin(x[:, c], allowed)
        if bad_col.any():
            r = int(np.argmax(bad_col))
            f = schema.features[c]
            raise RequestError(
                "out_of_range",
                f"row {r}: {f.name}={x[r, c]:g} is not one of "
                f"{', '.join(f'{v:g}' for v in allowed)}",
                field=f.name,
            )
    return x


# --------------------------------------------------------------------------------------------
# Shapes of JSON data


def parse_records(records: Sequence[Any], schema: Schema, max_rows: int) -> np.ndarray:
    """A list of ``{feature: number}`` objects, one per row."""
    _check_count(len(records), max_rows)
    names = schema.names
    # Fast path: every record an object with exactly the features, every value a number.
    getter = schema.getter
    if (
        getter is not None
        and set(map(type, records)) == {dict}
        and set(map(len, records)) == {len(names)}
    ):
        try:
            values = list(map(getter, records))
        except KeyError:
            pass  # a key other than a feature: the per-row path names it
        else:
            x = _numbers_matrix(values, len(names))
            if x is not None:
                return validate(x, schema)
    rows: list[list[Any]] = []
    append = rows.append
    for r, rec in enumerate(records):
        if type(rec) is not dict:
            raise RequestError(
                "malformed_body", f"row {r}: expected an object of features, got {_describe(rec)}"
            )
        # Fast path: exactly the expected keys (the common case) -> one comprehension.
        if len(rec) != len(names) or not schema.name_set.issuperset(rec):
            _check_names(rec.keys(), schema, f"row {r}")
        row = [rec[n] for n in names]
        _check_json_numbers(row, r, names)
        append(row)
    return validate(_to_array(rows, names), schema)


def parse_rows(
    rows_in: Sequence[Any],
    schema: Schema,
    max_rows: int,
    columns: Sequence[str] | None = None,
) -> np.ndarray:
    """A list of arrays, each holding one row's values in feature order.

    With ``columns`` (e.g. MLflow ``dataframe_split``), the arrays follow that column order
    instead and are reordered to the model's.
    """
    _check_count(len(rows_in), max_rows)
    order = schema.names
    if columns is not None:
        if type(columns) is not list or not all(type(c) is str for c in columns):
            raise RequestError("malformed_body", "columns must be a list of feature names")
        if len(set(columns)) != len(columns):
            raise RequestError("malformed_body", "columns contains a name more than once")
        _check_names(columns, schema, "columns")
        order = tuple(columns)
    width = len(order)
    x = None
    if set(map(type, rows_in)) == {list} and set(map(len, rows_in)) == {width}:
        x = _numbers_matrix(rows_in, width)
    if x is None:
        x = _rows_exact(rows_in, order)
    if columns is not None and tuple(columns) != schema.names:
        x = np.ascontiguousarray(x[:, [columns.index(n) for n in schema.names]])
    return validate(x, schema)


def _rows_exact(rows_in: Sequence[Any], order: Sequence[str]) -> np.ndarray:
    """``parse_rows``'s per-row path: raises on the first malformed row or value."""
    width = len(order)
    rows: list[list[Any]] = []
    for r, row in enumerate(rows_in):
        if type(row) is not list:
            raise RequestError(
                "malformed_body", f"row {r}: expected an array of values, got {_describe(row)}"
            )
        if len(row) != width:
            raise RequestError(
                "wrong_width",
                f"row {r} has {len(row)} values; expected {width} ({', '.join(order)})",
            )
        _check_json_numbers(row, r, order)
        rows.append(row)
    return _to_array(rows, order)


def parse_columns(cols: Mapping[str, Any], schema: Schema, max_rows: int) -> np.ndarray:
    """Columnar input ``{feature: [v0, v1, ...]}`` (all lists the same length)."""
    _check_names(cols.keys(), schema, "inputs")
    lengths = set()
    for name in schema.names:
        col = cols[name]
        if type(col) is not list:
            raise RequestError(
                "malformed_body", f"inputs.{name} must be an array of values", field=name
            )
        lengths.add(len(col))
    if len(lengths) != 1:
        raise RequestError("malformed_body", "all input columns must have the same length")
    _check_count(lengths.pop(), max_rows)
    names = schema.names
    columns = [cols[n] for n in names]
    all_numbers = set(map(type, chain.from_iterable(columns))) <= _NUMERIC_TYPES
    for j, col in enumerate([] if all_numbers else columns):
        for r, v in enumerate(col):
            if type(v) not in _NUMERIC_TYPES:
                raise RequestError(
                    "non_numeric",
                    f"row {r}: {names[j]} must be a number, got {_describe(v)}",
                    field=names[j],
                )
    x = _to_array(columns, names)  # (n_features, n_rows)
    return validate(np.ascontiguousarray(x.T), schema)


def parse_batch(items: Any, schema: Schema, max_rows: int) -> np.ndarray:
    """A JSON array of rows: all objects (records) or all arrays (feature order)."""
    if type(items) is not list:
        raise RequestError("malformed_body", "expected an array of rows")
    if not items:
        raise RequestError("empty_batch", "the request contains no rows")
    first = type(items[0])
    if first is dict:
        return parse_records(items, schema, max_rows)
    if first is list:
        return parse_rows(items, schema, max_rows)
    raise RequestError(
        "malformed_body", "expected an array of objects or an array of arrays (one per row)"
    )


def parse_json_payload(obj: Any, schema: Schema, max_rows: int) -> np.ndarray:
    """Any of the accepted JSON request shapes.

    * ``{feature: value, ...}``: one record;
    * ``[{...}, ...]`` or ``[[...], ...]``: a batch of records or of rows in feature order;
    * ``{"instances": [...]}``: the same batch (TF-serving / MLflow); a columnar object is
      accepted too;
    * ``{"inputs": {feature: [...]}}``: columnar (or ``{"inputs": [...]}`` as a batch);
    * ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` and
      ``{"dataframe_records": [...]}``: MLflow's pandas orientations.

    MLflow's optional ``params`` key is accepted alongside and ignored.
    """
    if type(obj) is list:
        return parse_batch(obj, schema, max_rows)
    if type(obj) is not dict:
        raise RequestError("malformed_body", "expected a JSON object or array")
    keys = [k for k in obj if k in PAYLOAD_KEYS]
    if not keys:
        return parse_records([obj], schema, max_rows)
    extra = set(obj) - set(keys) - {"params"}
    if len(keys) > 1 or extra:
        raise RequestError(
            "malformed_body",
            f"expected exactly one of {', '.join(sorted(PAYLOAD_KEYS))} (and optionally params); "
            f"got {', '.join(sorted(map(str, obj)))}",
        )
    key = keys[0]
    value = obj[key]
    if key == "dataframe_split":
        if type(value) is not dict or "data" not in value:
            raise RequestError(
                "malformed_body", "dataframe_split must be an object with data (and columns)"
            )
        unknown = sorted(map(str, set(value) - {"columns", "data", "index"}))
        if unknown:
            raise RequestError(
                "malformed_body",
                f"dataframe_split has an unknown key {_describe(unknown[0])}; "
                "expected data, columns and index",
            )
        if type(value["data"]) is not list:
            raise RequestError("malformed_body", "dataframe_split.data must be an array of rows")
        if "columns" in value and type(value["columns"]) is not list:  # null is not "absent"
            raise RequestError("malformed_body", "columns must be a list of feature names")
        return parse_rows(value["data"], schema, max_rows, columns=value.get("columns"))
    if key == "dataframe_records":
        if type(value) is not list:
            raise RequestError("malformed_body", "dataframe_records must be an array of objects")
        return parse_records(value, schema, max_rows)
    # instances / inputs
    if type(value) is dict:
        return parse_columns(value, schema, max_rows)
    return parse_batch(value, schema, max_rows)


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; anything unparsable is ``malformed_body`` (400)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError("malformed_body", f"the body is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------------------------
# Text formats


def parse_csv(body: bytes, schema: Schema, max_rows: int) -> np.ndarray:
    """CSV rows, with or without a header line.

    The first line is a header if none of its cells is a number; header names may come in any
    order and are matched to the model's features. Without a header, columns are in feature
    order. Blank lines are ignored.
    """
    try:
        text = body.decode("utf-8-sig")  # tolerate a byte-order mark from spreadsheet exports
    except UnicodeDecodeError:
        raise RequestError("malformed_body", "the CSV body is not valid UTF-8") from None
    x = _csv_fast(text, schema, max_rows)
    if x is not None:
        return validate(x, schema)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if any(row)]
    except csv.Error as exc:
        raise RequestError("malformed_body", f"the body is not valid CSV: {exc}") from None
    order: Sequence[str] = schema.names
    if rows and all(_NUMBER_RE.fullmatch(cell) is None for cell in rows[0]):
        header = [cell.strip() for cell in rows.pop(0)]
        if len(set(header)) != len(header):
            raise RequestError("malformed_body", "the CSV header names a column more than once")
        _check_names(header, schema, "CSV header")
        order = header
    _check_count(len(rows), max_rows)
    width = len(order)
    for r, row in enumerate(rows):
        if len(row) != width:
            raise RequestError(
                "wrong_width",
                f"row {r} has {len(row)} values; expected {width} ({', '.join(order)})",
            )
    x = None
    if _FAST_TEXT_RE.fullmatch(",".join(",".join(row) for row in rows)):
        try:
            x = np.array(rows, dtype=np.float64)
        except ValueError:
            x = None  # e.g. "1e" or "": locate and explain the bad cell below
    if x is None:
        x = np.array(
            [
                [_parse_text_number(cell, r, order[j]) for j, cell in enumerate(row)]
                for r, row in enumerate(rows)
            ],
            dtype=np.float64,
        ).reshape(len(rows), width)
    if order is not schema.names:
        x = np.ascontiguousarray(x[:, [list(order).index(n) for n in schema.names]])
    return validate(x, schema)


def _csv_fast(text: str, schema: Schema, max_rows: int) -> np.ndarray | None:
    """``parse_csv``'s fast path: plain numeric CSV parsed by orjson, else ``None``.

    Accepted only when the data lines consist of digits, signs, dots, exponents, commas,
    blanks and newlines, and turning each line into a JSON array gives valid JSON whose rows
    all have the expected width: then every cell is a JSON number, a subset of the CSV number
    grammar, and orjson's correctly rounded parser gives the values ``float()`` gives, several
    times faster than the csv module plus a float conversion per cell. A header line is taken
    when it names exactly the features (no quotes). Everything else (quoted cells, ``+1``,
    ``.5``, blank lines between rows, a bad cell, ...) returns ``None`` for the exact path.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:  # a bare CR is a line break to the csv module: leave it to it
            return None
    first, _, rest = text.partition("\n")
    order: Sequence[str] = schema.names
    data = text
    if _FAST_TEXT_RE.fullmatch(first) is None:
        cells = first.split(",")
        if '"' in first or any(_NUMBER_RE.fullmatch(c) is not None for c in cells):
            return None
        header = [c.strip() for c in cells]
        if len(header) != len(schema.names) or set(header) != schema.name_set:
            return None
        order, data = header, rest
    data = data.rstrip("\n")
    if not data or _FAST_TEXT_RE.fullmatch(data) is None:
        return None
    try:
        rows = orjson.loads("[[" + data.replace("\n", "],[") + "]]")
    except orjson.JSONDecodeError:
        return None
    width = len(order)
    if set(map(len, rows)) != {width}:
        return None
    _check_count(len(rows), max_rows)
    x = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    x = x.reshape(len(rows), width)
    if order is not schema.names:
        x = np.ascontiguousarray(x[:, [list(order).index(n) for n in schema.names]])
    return x


def parse_query(params: Iterable[tuple[str, str]], schema: Schema) -> np.ndarray:
    """Query-string parameters, one per feature (plumber style): exactly one row."""
    values: dict[str, str] = {}
    for key, value in params:
        if key in values:
            raise RequestError(
                "malformed_body", f"parameter {_describe(key)} is given more than once", field=key
            )
        values[key] = value
    _check_names(values.keys(), schema, "query")
    row = [_parse_text_number(values[n], 0, n) for n in schema.names]
    return validate(np.array([row], dtype=np.float64), schema)


# --------------------------------------------------------------------------------------------
# Open Inference Protocol v2 tensors

#: OIP v2 numeric datatypes; BOOL and BYTES tensors are refused as non-numeric.
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


def _tensor(spec: Any, index: int, max_rows: int) -> tuple[str, list[int], np.ndarray]:
    """Validate one OIP input tensor; return its name, shape and values as float64 (flat)."""
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
    if datatype not in TENSOR_FLOAT_TYPES and datatype not in TENSOR_INT_TYPES:
        raise RequestError(
            "non_numeric",
            f"tensor {name!r}: datatype {_describe(datatype)} is not numeric; use FP64, FP32 "
            "or an INT/UINT type",
            field=name,
        )
    _check_count(shape[0], max_rows)
    size = 1
    for d in shape:
        size *= d
    if size > max_rows * 1024:  # no tensor of ours is that wide: refuse before flattening
        raise RequestError(
            "malformed_body", f"tensor {name!r}: shape {shape} is too large", field=name
        )
    flat = _flatten(spec.get("data"), name)
    if len(flat) != size:
        raise RequestError(
            "malformed_body",
            f"tensor {name!r}: shape {shape} needs {size} values, data has {len(flat)}",
            field=name,
        )
    integer = datatype in TENSOR_INT_TYPES
    allowed = _INT_ONLY if integer else _NUMERIC_TYPES
    for i, v in enumerate([] if set(map(type, flat)) <= allowed else flat):
        t = type(v)
        if t is not int and (integer or t is not float):
            raise RequestError(
                "non_numeric",
                f"tensor {name!r}: element {i} must be {'an integer' if integer else 'a number'}"
                f" for {datatype}, got {_describe(v)}",
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
        name, shape, values = _tensor(spec, i, max_rows)
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
    _check_names(columns.keys(), schema, "inputs")
    x = np.empty((n_rows or 0, schema.width), dtype=np.float64)
    for j, name in enumerate(schema.names):
        x[:, j] = columns[name]
    return validate(x, schema)
