"""Turn request payloads into a float64 matrix in the model's feature order.

Every parser here either returns a C-contiguous ``(n_rows, n_features)`` float64 array that
has passed ``validate`` (finite, inside the manifest ranges) or raises ``RequestError``.
No other exception may escape for any input: the hypothesis tests in
``tests/unit/test_parsing_properties.py`` hold the module to that.

Design notes:

* No pandas: building a DataFrame per request costs far more than the prediction itself.
  Rows are assembled as Python lists in feature order and converted with one ``np.array``.
* Two speeds, one result. Batches first try a fast path that only *accepts* input that is
  well-formed everywhere: lists of JSON values are checked and converted by C-level loops
  (``map``, ``itemgetter``, ``set`` of types, ``np.fromiter``), and number-only text (CSV, and
  JSON bodies of rows or records) is read by numpy's C reader without a Python object per value
  (``_read_number_table``). Anything a fast path does not accept is parsed again by the exact
  per-row path below, which finds and names the first problem. So the fast paths change the
  cost, never the answer or the error (``tests/unit/test_parsing_fast_paths.py`` compares
  both, bit for bit); single rows skip numpy's per-call overhead in ``validate``
  (``Schema.row_ok``) the same way.
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
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson
from numpy.lib.stride_tricks import sliding_window_view

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
# Text made only of these bytes can go to numpy's C reader (the fast paths); any other byte
# sends the body through the exact path. ``bytes.translate(None, these)`` is empty for such text.
_CSV_NUMBER_BYTES: Final = b"0123456789eE+-. \t\n,"
_JSON_NUMBER_BYTES: Final = b"0123456789eE+-. ,\n"
# JSON's number grammar is stricter than strtod's; _json_numbers_only checks the difference on a
# copy with digits 1-9 as "1", "E" as "e", blanks and newlines as "," and minus signs removed.
_JSON_SHAPE_TABLE: Final = bytes.maketrans(b"23456789E \n", b"11111111e,,")
# A records body without its numbers and syntax leaves the keys' letters (_records_table);
# for numpy's reader, keys and values become alternate fields and records lines.
_RECORD_SYNTAX_BYTES: Final = _JSON_NUMBER_BYTES + b'":{}'
_RECORD_TABLE: Final = bytes.maketrans(b":}", b",\n")
# ... and everything else but the numbers' bytes goes: the keys' fields are left (nearly) empty.
_RECORD_DROP: Final = bytes(range(128)).translate(None, _JSON_NUMBER_BYTES + b":}")
_COMMA, _DOT, _E, _PLUS, _MINUS, _ZERO, _ONE = b",.e+-01"
_QUOTE, _COLON, _LBRACE, _RBRACE, _BLANK = b'":{} '
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


def _in_feature_order(x: np.ndarray, order: Sequence[str], schema: Schema) -> np.ndarray:
    """``x``, whose columns ``order`` names, with its columns in the model's feature order."""
    if tuple(order) == schema.names:
        return x
    return np.ascontiguousarray(x[:, [list(order).index(n) for n in schema.names]])


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
    return validate(_in_feature_order(x, order, schema), schema)


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


def parse_json_body(body: bytes, schema: Schema, max_rows: int) -> np.ndarray:
    """A JSON request body in any shape ``parse_json_payload`` accepts.

    Large batches in the two shapes clients send most, an array of rows in feature order and an
    array of records, are first tried by ``_json_text_fast``, which reads the numbers straight
    from the text; everything else, and anything that path does not accept, is decoded by
    orjson and parsed by ``parse_json_payload``, which names the problem.
    """
    x = _json_text_fast(body, schema, max_rows)
    if x is not None:
        return validate(x, schema)
    return parse_json_payload(decode_json(body), schema, max_rows)


def _json_text_fast(body: bytes, schema: Schema, max_rows: int) -> np.ndarray | None:
    """The numbers of ``[[...], ...]`` or ``[{...}, ...]`` read by numpy's C reader, else ``None``.

    Decoding a 10,000-row batch with orjson creates one Python float per value, and that alone
    costs more than everything else the request does; this path never creates them. It accepts
    only compact or Python-style (``", "``, ``": "``) single-line JSON whose rows are all
    numbers with the JSON number grammar, every record with exactly the features in the first
    record's key order; anything else (nesting, strings, ``null``, other keys or orders, line
    breaks, non-ASCII) returns ``None`` and takes orjson's path, so this path changes the cost,
    never the outcome.
    """
    if len(body) < 2 or b"\n" in body or b"\r" in body or b"\t" in body or not body.isascii():
        return None
    body = body.strip(b" ")
    order: Sequence[str]
    if body.startswith(b"[[") and body.endswith(b"]]"):
        inner = body[2:-2]
        if b"], [" in inner:
            inner = inner.replace(b"], [", b"],[")
        text = inner.replace(b"],[", b"\n")  # brackets left over fail _json_numbers_only
        order = schema.names
        if not _json_numbers_only(text):
            return None
        x = _read_number_table(text, len(order))
        if x is None or len(x) != text.count(b"\n") + 1:
            return None  # e.g. an empty row, which numpy's reader skips
    elif body.startswith(b"[{") and body.endswith(b"}]"):
        found = _records_table(body[2:-2], schema)
        if found is None:
            return None
        x, order = found
    else:
        return None
    if not np.isfinite(x).all():
        return None  # a number orjson refuses as beyond float64 (read as inf here)
    _check_count(len(x), max_rows)
    return _in_feature_order(x, order, schema)


@dataclass(frozen=True)
class _KeyLayout:
    """The bytes of a record's keys, ``"name":`` each, in one key order."""

    template: np.ndarray  # (n_keys, width) uint8: each key's bytes, zero-padded
    mask: np.ndarray  # (n_keys, width) bool: which of them belong to the key
    letters: bytes  # the keys' bytes that are neither number nor JSON syntax bytes


@lru_cache(maxsize=64)
def _key_layout(names: tuple[str, ...]) -> _KeyLayout:
    keys = [b'"' + n.encode("ascii") + b'":' for n in names]
    width = max(map(len, keys))
    template = np.zeros((len(keys), width), dtype=np.uint8)
    mask = np.zeros((len(keys), width), dtype=bool)
    for j, key in enumerate(keys):
        template[j, : len(key)] = np.frombuffer(key, dtype=np.uint8)
        mask[j, : len(key)] = True
    letters = b"".join(keys).translate(None, _RECORD_SYNTAX_BYTES)
    return _KeyLayout(template, mask, letters)


def _records_table(inner: bytes, schema: Schema) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """The records between ``[{`` and ``}]`` as a matrix in the first record's key order.

    Every record must be exactly ``"k1":v1,"k2":v2,...`` with the features as keys, each once,
    in the first record's order, and records must be separated by ``},{``. That is checked on
    the bytes as numpy arrays (counts of each syntax byte, the key's bytes at every opening
    quote, the separators before every key), so no Python object is made per record or value;
    then the keys become fields numpy's reader skips. Returns the matrix and the key order, or
    ``None``.
    """
    end = inner.find(b"}")
    first = inner if end < 0 else inner[:end]
    names = tuple(k.partition(b":")[0].strip(b" ")[1:-1].decode("ascii") for k in first.split(b","))
    if len(names) != len(schema.names) or set(names) != schema.name_set:
        return None
    layout = _key_layout(names)
    k = len(names)
    a = np.frombuffer(inner, dtype=np.uint8)
    n = int(np.count_nonzero(a == _RBRACE)) + 1  # records
    quotes = np.flatnonzero(a == _QUOTE)
    if (
        len(quotes) != 2 * k * n
        or np.count_nonzero(a == _LBRACE) != n - 1
        or np.count_nonzero(a == _COLON) != k * n
        or np.count_nonzero(a == _COMMA) != n * (k - 1) + n - 1
    ):
        return None
    # The expected key ("name":) at every opening quote: so every quote and colon is a key's.
    starts = quotes[0::2].reshape(n, k)
    width = layout.template.shape[1]
    windows = sliding_window_view(np.concatenate([a, np.zeros(width, np.uint8)]), width)[starts]
    if not ((windows == layout.template) | ~layout.mask).all():
        return None
    # A comma before every key but a record's first, "},{" before that one: so every comma and
    # brace is a separator, and each value is the bytes between its key and the next separator.
    # Python's json.dumps writes ", " and "}, {" (and ": ", whose blank the reader strips).
    gap = 1 if b'": ' in first else 0
    later_keys = starts[:, 1:]
    if not (a[later_keys - 1 - gap] == _COMMA).all():
        return None
    if gap and not (a[later_keys - 1] == _BLANK).all():
        return None
    record_starts = starts[1:, 0]
    for back, byte in enumerate(b"{ ,}" if gap else b"{,}", start=1):
        if not (a[record_starts - back] == byte).all():
            return None
    # No letters or syntax in the values besides the numbers' (checked below and by the reader).
    if inner.translate(None, _RECORD_SYNTAX_BYTES) != layout.letters * n:
        return None
    # ",k1,v1,k2,v2,...": one line per record, the values in the even columns, the keys'
    # fields emptied of all but number bytes (a shorter text for the reader, which never
    # converts them).
    text = b"," + inner.translate(_RECORD_TABLE, _RECORD_DROP)
    if not _json_numbers_only(text, values_only=False):
        return None
    x = _read_number_table(text, k, usecols=range(2, 2 * k + 1, 2))
    return None if x is None else (x, names)


def _json_numbers_only(text: bytes, values_only: bool = True) -> bool:
    """Whether every field of number-only ``text`` is a JSON number where strtod reads one.

    ``_read_number_table`` would also accept ``+1``, ``.5``, ``1.``, ``1.e5`` and ``01``, which
    are not JSON (orjson refuses them), and reads ``-0`` as -0.0 where orjson gives the integer
    0. Such text returns ``False``; fields strtod refuses are refused by the reader. The checks
    compare each byte with its neighbours as numpy arrays: one ``bytes.find`` per pattern would
    cost ten times as much on a large batch. With ``values_only=False`` the text may also hold
    other fields (record keys), which can only make the checks stricter.
    """
    if values_only and text.translate(None, _JSON_NUMBER_BYTES):
        return False
    # Digits 1-9 as "1", "E" as "e", blanks and line breaks as ",", minus signs removed, and a
    # "," either side so that every field is enclosed by commas.
    t = np.frombuffer(b"," + text.translate(_JSON_SHAPE_TABLE, b"-") + b",", dtype=np.uint8)
    before, here, after = t[:-2], t[1:-1], t[2:]
    field_start = before == _COMMA
    bad = (here == _DOT) & (field_start | (after == _COMMA) | (after == _E))  # .5 1. 1.e5
    bad |= (here == _PLUS) & (before != _E)  # + outside an exponent
    bad |= field_start & (here == _ZERO) & ((after == _ZERO) | (after == _ONE))  # 01
    if bad.any():
        return False
    # "-0" as a whole field (an integer zero to orjson): minus kept this time.
    t = np.frombuffer(text.translate(_JSON_SHAPE_TABLE) + b",", dtype=np.uint8)
    return not ((t[:-2] == _MINUS) & (t[1:-1] == _ZERO) & (t[2:] == _COMMA)).any()


# --------------------------------------------------------------------------------------------
# Text formats


def parse_csv(body: bytes, schema: Schema, max_rows: int) -> np.ndarray:
    """CSV rows, with or without a header line.

    The first line is a header if none of its cells is a number; header names may come in any
    order and are matched to the model's features. Without a header, columns are in feature
    order. Blank lines are ignored.
    """
    x = _csv_fast(body, schema, max_rows)
    if x is not None:
        return validate(x, schema)
    try:
        text = body.decode("utf-8-sig")  # tolerate a byte-order mark from spreadsheet exports
    except UnicodeDecodeError:
        raise RequestError("malformed_body", "the CSV body is not valid UTF-8") from None
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
    x = np.array(
        [
            [_parse_text_number(cell, r, order[j]) for j, cell in enumerate(row)]
            for r, row in enumerate(rows)
        ],
        dtype=np.float64,
    ).reshape(len(rows), width)
    return validate(_in_feature_order(x, order, schema), schema)


def _read_number_table(
    text: bytes, width: int, usecols: Sequence[int] | None = None
) -> np.ndarray | None:
    """numpy's C text reader over lines of ``width`` comma-separated numbers, else ``None``.

    ``text`` must already be known to hold only number characters, blanks, commas and
    newlines. ``np.loadtxt`` converts each field with ``PyOS_string_to_double`` (the
    correctly rounded conversion behind ``float()``, without its ``_`` digit separators), so a
    field it accepts is one ``_NUMBER_RE`` accepts, with the same value; it never creates a
    Python object per value, which makes it 3-4x faster than any route through ``float`` or
    a JSON parser. It skips empty lines (as the csv module does here) and refuses ragged
    rows, empty fields and any field that is not entirely a number; ``usecols`` selects the
    fields to read (the others are never converted).
    """
    if not text.strip():
        return None  # loadtxt would warn about empty input
    try:
        x = np.loadtxt(
            io.StringIO(text.decode("ascii")),
            delimiter=",",
            dtype=np.float64,
            ndmin=2,
            comments=None,
            quotechar=None,
            usecols=usecols,
        )
    except ValueError:
        return None
    return x if x.shape[1] == width else None


def _csv_fast(body: bytes, schema: Schema, max_rows: int) -> np.ndarray | None:
    """``parse_csv``'s fast path: plain ASCII numeric CSV read by numpy's C reader, else ``None``.

    Accepted only when every data line consists of digits, signs, dots, exponents, commas and
    blanks (so no quoting, no ``nan``), and numpy's reader finds the expected width on every
    line. A header line is taken when it names exactly the features (no quotes). Anything else
    (quoted cells, a bad cell, ragged or whitespace-only lines, a bare CR, non-ASCII text) returns
    ``None`` for the exact path, which names the problem.
    """
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]  # a UTF-8 byte-order mark, as the exact path's utf-8-sig decoding
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
        if b"\r" in body:  # a bare CR is a line break to the csv module: leave it to it
            return None
    first, _, rest = body.partition(b"\n")
    order: Sequence[str] = schema.names
    data = body
    if first.translate(None, _CSV_NUMBER_BYTES):
        if not first.isascii() or b'"' in first:
            return None
        cells = first.decode("ascii").split(",")
        if any(_NUMBER_RE.fullmatch(c) is not None for c in cells):
            return None
        header = [c.strip() for c in cells]
        if len(header) != len(schema.names) or set(header) != schema.name_set:
            return None
        order, data = header, rest
    if data.translate(None, _CSV_NUMBER_BYTES):
        return None
    x = _read_number_table(data, len(order))
    if x is None:
        return None
    _check_count(len(x), max_rows)
    return _in_feature_order(x, order, schema)


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
    data = spec.get("data")
    if isinstance(data, np.ndarray):
        # Already decoded from the binary tensor extension, in the tensor's own datatype.
        if data.size != size:
            raise RequestError(
                "malformed_body",
                f"tensor {name!r}: shape {shape} needs {size} values, data has {data.size}",
                field=name,
            )
        return name, shape, data.astype(np.float64)
    flat = _flatten(data, name)
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
