"""One feature's part of the OpenAPI document: its JSON Schema, an example value, its CSV
cell pattern (``openapi_models`` assembles the per-model request schemas from them).

A string (categorical) feature is ``{"type": "string", "enum": [categories]}``.
"""

from __future__ import annotations

import re
from typing import Any

from model_server.core.schema import Feature


def feature_schema(f: Feature) -> dict[str, Any]:
    """The JSON Schema of one feature's value."""
    if f.categories is not None:
        return {"type": "string", "enum": list(f.categories)}
    if f.allowed is not None:
        return {"enum": [int(v) if v.is_integer() else v for v in f.allowed]}
    return {"type": "number", "minimum": f.min, "maximum": f.max}


def example_value(f: Feature) -> float | str:
    """A value ``f`` accepts, for examples: its first allowed value, or its range's middle."""
    if f.categories is not None:
        return f.categories[0]
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


def csv_cell_regex(f: Feature) -> str:
    """Decimal spellings of the values a feature accepts (exact for [0, integer] ranges), or
    the categories of a string feature (quoted as CSV quotes them where they must be)."""
    if f.categories is not None:
        return "(?:" + "|".join(_csv_text(c) for c in f.categories) + ")"
    if f.allowed is not None and all(v.is_integer() and v >= 0 for v in f.allowed):
        return "(?:" + "|".join(str(int(v)) for v in f.allowed) + ")"
    if f.min == 0 and f.max.is_integer() and f.max >= 1:
        top = int(f.max)
        return f"(?:{_int_range_regex(top - 1)}(?:\\.[0-9]{{1,6}})?|{top}(?:\\.0{{1,6}})?)"
    return r"(?:[0-9]+(?:\.[0-9]+)?)"  # pragma: no cover - no such feature in the seed models


def _csv_text(category: str) -> str:
    """A regex for one category as a CSV cell."""
    if any(c in category for c in ',"\r\n'):
        return '"' + re.escape(category.replace('"', '""')) + '"'
    return re.escape(category)


def csv_example(value: float | str) -> str:
    """A feature value as a CSV cell in the examples."""
    return value if isinstance(value, str) else f"{value:g}"
