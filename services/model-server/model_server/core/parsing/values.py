"""What every input format shares: number grammar, name checks, conversion, validation.

Row numbers in messages are 0-based, like JSON array indices.

A model with a string (categorical) feature parses to an object matrix: the parsers put the
values of its string columns in as they come (JSON values, CSV cells, query values, BYTES
elements) and type-check only the numeric ones; ``validate`` then checks every string cell
against the feature's categories, the one place that does, and the numeric columns exactly as
for a numeric model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson

from model_server.core.errors import RequestError
from model_server.core.parsing import fast
from model_server.core.schema import Feature, Schema

# A decimal number, or nan/inf spelled out (accepted by the grammar so they are reported as
# ``non_finite`` rather than ``non_numeric``). Text formats (CSV, query strings) use it:
# Python's ``float()`` alone would also accept ``1_000`` and non-ASCII digits.
NUMBER_RE: Final = re.compile(
    r"\s*[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*",
    re.ASCII | re.IGNORECASE,
)
NUMERIC_TYPES: Final = frozenset({int, float})
INT_ONLY: Final = frozenset({int})


def describe(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_count(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise RequestError("empty_batch", "the request contains no rows")
    if n_rows > max_rows:
        raise RequestError(
            "too_many_rows", f"the request has {n_rows} rows; at most {max_rows} are allowed"
        )


def check_names(given: Iterable[str], schema: Schema, where: str) -> None:
    """Refuse unknown names first (likely typos), then missing ones, naming the feature."""
    given_set = set(given)
    for name in given:
        if name not in schema.name_set:
            raise RequestError(
                "unknown_feature",
                f"{where}: unknown feature {describe(name)}; expected {', '.join(schema.names)}",
                field=str(name),
            )
    for name in schema.names:
        if name not in given_set:
            raise RequestError("missing_feature", f"{where}: missing feature {name!r}", field=name)


def parse_text_number(text: str, row: int, name: str) -> float:
    if NUMBER_RE.fullmatch(text) is None:
        raise RequestError(
            "non_numeric",
            f"row {row}: {name} must be a number, got {describe(text)}",
            field=name,
        )
    return float(text)


def parse_text_cell(text: str, row: int, name: str, schema: Schema) -> float | str:
    """A text cell (CSV, query string): a number, or the string itself for a string feature
    (checked against its categories by ``validate``)."""
    if name in schema.string_names:
        return text
    return parse_text_number(text, row, name)


def check_json_numbers(
    row: Sequence[Any], r: int, names: Sequence[str], strings: frozenset[str] = frozenset()
) -> None:
    """Refuse the first value that is not a JSON number, except under the ``strings`` names
    (string features: ``validate`` checks those)."""
    for j, v in enumerate(row):
        if type(v) not in NUMERIC_TYPES and names[j] not in strings:  # type(): bool is an int
            raise RequestError(
                "non_numeric",
                f"row {r}: {names[j]} must be a number, got {describe(v)}",
                field=names[j],
            )


def to_array(rows: list[list[Any]], names: Sequence[str], strings: bool = False) -> np.ndarray:
    """Convert rows of JSON numbers (already type-checked) to float64; with ``strings`` (a
    model with string features), to an object matrix of the values as they are."""
    if strings:
        table = np.empty((len(rows), len(names)), dtype=object)
        table[:] = rows  # element by element: a string never becomes an array of characters
        return table
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


def numbers_matrix(rows: Sequence[Sequence[Any]], width: int) -> np.ndarray | None:
    """Fast path: rows of exactly ``width`` JSON numbers as float64, else ``None``.

    The caller has checked every row's length. ``None`` (a non-number somewhere, or an integer
    too large for float64) sends the request through the exact per-row path.
    """
    if not fast.ENABLED or not set(map(type, chain.from_iterable(rows))) <= NUMERIC_TYPES:
        return None
    try:
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    except OverflowError:
        return None
    return flat.reshape(len(rows), width)


def in_feature_order(x: np.ndarray, order: Sequence[str], schema: Schema) -> np.ndarray:
    """``x``, whose columns ``order`` names, with its columns in the model's feature order."""
    if tuple(order) == schema.names:
        return x
    return np.ascontiguousarray(x[:, [list(order).index(n) for n in schema.names]])


def validate(x: np.ndarray, schema: Schema) -> np.ndarray:
    """Check a parsed matrix against the schema: finite values inside the manifest ranges.

    Returns ``x`` unchanged (for chaining); raises ``RequestError`` naming the first bad cell.
    For a model with string features ``x`` is an object matrix: see ``_validate_mixed``.
    """
    if schema.numeric_part is not None:
        return _validate_mixed(x, schema, schema.numeric_part)
    if fast.ENABLED and len(x) == 1 and schema.row_ok(x[0].tolist()):
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


def _validate_mixed(x: np.ndarray, schema: Schema, numeric: Schema) -> np.ndarray:
    """``validate`` for a model with string features; returns an object matrix in which the
    numeric columns hold floats (checked as a numeric model's) and the string columns strings
    from their features' categories."""
    if x.dtype != object:  # e.g. numbers only, from a fast path: no string can be valid
        x = x.astype(object)
    cols = x[:, list(schema.numeric_columns)]  # numbers only: the parsers checked them
    try:
        numbers = cols.astype(np.float64)
    except OverflowError:  # a JSON integer too large for float64
        for r, row in enumerate(cols.tolist()):
            for j, v in enumerate(row):
                try:
                    float(v)
                except OverflowError:
                    name = numeric.names[j]
                    raise RequestError(
                        "non_finite", f"row {r}: {name} is too large", field=name
                    ) from None
        raise  # pragma: no cover - unreachable: some value failed above
    validate(numbers, numeric)
    for c, f, allowed in schema.strings:
        for r, v in enumerate(x[:, c].tolist()):
            if type(v) is not str or v not in allowed:
                raise RequestError(
                    "out_of_range",
                    f"row {r}: {f.name} must be one of {allowed_list(f)}; got {describe(v)}",
                    field=f.name,
                )
    out = x.copy()
    out[:, list(schema.numeric_columns)] = numbers
    return out


def allowed_list(f: Feature) -> str:
    """A string feature's categories for a message: the first ten, then how many in all."""
    values = f.categories or ()
    shown = ", ".join(describe(v) for v in values[:10])
    return shown if len(values) <= 10 else f"{shown}, ... ({len(values)} in all)"
