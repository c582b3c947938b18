"""Plumber-style query strings: one parameter per feature, exactly one row.

A string feature's value is the parameter's text as it is (``?color=red``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from model_server.core.errors import RequestError
from model_server.core.parsing.values import (
    check_names,
    describe,
    parse_text_cell,
    parse_text_number,
    to_array,
    validate,
)
from model_server.core.schema import Schema


def parse_query(params: Sequence[tuple[str, str]], schema: Schema) -> np.ndarray:
    """Query-string parameters, one per feature (plumber style): exactly one row.

    A name given more than once is refused; the one named is the first such name in order of
    first appearance, whatever the order of the repetitions.
    """
    values = dict(params)
    if len(values) != len(params):
        counts = Counter(k for k, _ in params)
        key = next(k for k in values if counts[k] > 1)
        raise RequestError(
            "malformed_body", f"parameter {describe(key)} is given more than once", field=key
        )
    check_names(values.keys(), schema, "query")
    if schema.strings:  # strings stay strings; validate checks them against the categories
        cells = [parse_text_cell(values[n], 0, n, schema) for n in schema.names]
        return validate(to_array([cells], schema.names, strings=True), schema)
    row = [parse_text_number(values[n], 0, n) for n in schema.names]
    return validate(np.array([row], dtype=np.float64), schema)
