"""Property-based tests: parsers turn anything into either a valid matrix or a RequestError."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from model_server.api.oip_tensors import parse_tensors
from model_server.core.errors import STATUS_BY_CODE, RequestError
from model_server.core.parsing import (
    parse_csv,
    parse_json_body,
    parse_json_payload,
    parse_query,
    parse_records,
    parse_rows,
)
from model_server.core.schema import Schema

SCHEMA = Schema.from_manifest(
    [
        {"name": "pregnant", "min": 0, "max": 40},
        {"name": "glucose", "min": 0, "max": 400},
        {"name": "pressure", "min": 0, "max": 300},
        {"name": "chas", "min": 0, "max": 1, "allowed": [0, 1]},
    ]
)
MAX_ROWS = 50
NAMES = list(SCHEMA.names)
# No timing assertions: hypothesis' per-example deadline is switched off.
PROPS = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(NAMES),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from([*NAMES, "instances", "inputs", "x"]) | st.text(max_size=5),
                      children, max_size=5),
    max_leaves=30,
)  # fmt: skip


def valid_row() -> st.SearchStrategy[list[float]]:
    return st.tuples(
        st.floats(0, 40),
        st.floats(0, 400),
        st.integers(0, 300).map(float),
        st.sampled_from([0.0, 1.0]),
    ).map(list)


def check_outcome(call: Any) -> np.ndarray | None:
    """Run a parser; it must return a valid matrix or raise RequestError, nothing else."""
    try:
        x = call()
    except RequestError as exc:
        assert exc.code in STATUS_BY_CODE
        assert 400 <= exc.status < 500
        assert exc.message
        return None
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float64
    assert x.ndim == 2 and x.shape[1] == SCHEMA.width and 1 <= x.shape[0] <= MAX_ROWS
    assert np.isfinite(x).all()
    assert ((x >= SCHEMA.lows) & (x <= SCHEMA.highs)).all()
    return x


@PROPS
@given(json_values)
def test_any_json_value_gives_a_matrix_or_a_request_error(value: Any) -> None:
    check_outcome(lambda: parse_json_payload(value, SCHEMA, MAX_ROWS))


@PROPS
@given(st.binary(max_size=200))
def test_any_bytes_as_csv_give_a_matrix_or_a_request_error(body: bytes) -> None:
    check_outcome(lambda: parse_csv(body, SCHEMA, MAX_ROWS))


@PROPS
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_as_json_give_a_matrix_or_a_request_error(body: bytes) -> None:
    check_outcome(lambda: parse_json_body(body, SCHEMA, MAX_ROWS))


csv_cells = st.sampled_from(
    ["1", "0", "2.5", "1e2", "nan", "-inf", "", " ", "x", '"', "1_0", "\u0661", *NAMES]
)


@PROPS
@given(st.lists(st.lists(csv_cells, max_size=6), max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_csv_like_text_gives_a_matrix_or_a_request_error(
    rows: list[list[str]], newline: str
) -> None:
    body = newline.join(",".join(row) for row in rows).encode()
    check_outcome(lambda: parse_csv(body, SCHEMA, MAX_ROWS))


@PROPS
@given(st.lists(st.tuples(st.sampled_from([*NAMES, "x"]), st.text(max_size=6)), max_size=6))
def test_any_query_gives_a_row_or_a_request_error(pairs: list[tuple[str, str]]) -> None:
    check_outcome(lambda: parse_query(pairs, SCHEMA))


@PROPS
@given(json_values)
def test_any_tensor_list_gives_a_matrix_or_a_request_error(value: Any) -> None:
    check_outcome(lambda: parse_tensors(value, SCHEMA, MAX_ROWS))


tensor_specs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input-0", *NAMES]),
        "shape": st.lists(st.integers(0, 5), min_size=1, max_size=3),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "X"]),
        "data": st.lists(st.floats(0, 2) | st.integers(0, 2) | st.text(max_size=2), max_size=12),
    }
)


@PROPS
@given(st.lists(tensor_specs, min_size=1, max_size=5))
def test_tensor_like_inputs_give_a_matrix_or_a_request_error(inputs: list[Any]) -> None:
    check_outcome(lambda: parse_tensors(inputs, SCHEMA, MAX_ROWS))


# -- valid inputs round-trip -------------------------------------------------------------------


@PROPS
@given(st.lists(valid_row(), min_size=1, max_size=MAX_ROWS))
def test_valid_rows_round_trip_through_every_shape(rows: list[list[float]]) -> None:
    expected = np.array(rows)
    records = [dict(zip(NAMES, row, strict=True)) for row in rows]
    columns = {n: [row[j] for row in rows] for j, n in enumerate(NAMES)}
    np.testing.assert_array_equal(parse_rows(rows, SCHEMA, MAX_ROWS), expected)
    np.testing.assert_array_equal(parse_records(records, SCHEMA, MAX_ROWS), expected)
    for payload in (rows, records, {"instances": rows}, {"inputs": columns}):
        np.testing.assert_array_equal(parse_json_payload(payload, SCHEMA, MAX_ROWS), expected)
    tensor = [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]
    np.testing.assert_array_equal(parse_tensors(tensor, SCHEMA, MAX_ROWS), expected)


@PROPS
@given(st.lists(valid_row(), min_size=1, max_size=MAX_ROWS), st.permutations(NAMES))
def test_valid_csv_round_trips_with_and_without_header(
    rows: list[list[float]], header: list[str]
) -> None:
    expected = np.array(rows)
    plain = "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode()
    np.testing.assert_array_equal(parse_csv(plain, SCHEMA, MAX_ROWS), expected)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(row[NAMES.index(h)]) for h in header])
    with_header = buffer.getvalue().encode()
    np.testing.assert_array_equal(parse_csv(with_header, SCHEMA, MAX_ROWS), expected)


@PROPS
@given(valid_row())
def test_valid_query_round_trips(row: list[float]) -> None:
    pairs = [(n, repr(v)) for n, v in zip(NAMES, row, strict=True)]
    np.testing.assert_array_equal(parse_query(pairs, SCHEMA), np.array([row]))
