"""The parsers' fast paths change the cost, never the outcome.

Every input is parsed twice: as served (fast paths on) and with every fast path switched off
(``exact()``), and the outcomes must be identical: the same matrix, or the same error code,
message and field. Inputs are generated close to valid data (numbers, a few wrong types,
missing/extra keys, odd CSV cells and line breaks), where the fast paths actually engage.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_server.core import parsing
from model_server.core.errors import RequestError
from model_server.core.parsing import csv_body, fast, json_body
from model_server.core.schema import Schema

SCHEMA = Schema.from_manifest(
    [
        {"name": "pregnant", "min": 0, "max": 40},
        {"name": "glucose", "min": 0, "max": 400},
        {"name": "pressure", "min": 0, "max": 300},
        {"name": "chas", "min": 0, "max": 1, "allowed": [0, 1]},
    ]
)
NAMES = list(SCHEMA.names)
MAX_ROWS = 20
PROPS = settings(max_examples=300, deadline=None)


@contextlib.contextmanager
def exact() -> Iterator[None]:
    """Switch every fast path off: the per-row, per-cell reference behaviour."""
    with mock.patch.object(fast, "ENABLED", False):
        yield


def outcome(call: Callable[[], np.ndarray]) -> tuple[str, Any]:
    try:
        x = call()
    except RequestError as exc:
        return ("error", (exc.code, exc.message, exc.field))
    assert x.dtype == np.float64 and x.flags.c_contiguous
    return ("matrix", x)


def same_outcome(
    call: Callable[[], np.ndarray], check: Callable[[np.ndarray], None] | None = None
) -> None:
    """Fast and exact paths agree; a matrix also passes ``check`` (``check_valid`` by default)."""
    fast = outcome(call)
    with exact():
        slow = outcome(call)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "matrix":
        # Bit for bit: -0.0 and 0.0 compare equal but may print differently in an error.
        assert fast[1].shape == slow[1].shape and fast[1].tobytes() == slow[1].tobytes()
        (check or check_valid)(fast[1])
    else:
        assert fast[1] == slow[1]


numbers = st.sampled_from([0, 1, 2, 40, 0.5, 1.0, 399.5, 41, -1, 2**70, 10**400, -0.0])
near_numbers = (
    numbers
    | numbers
    | numbers
    | st.sampled_from([True, False, None, "1", "x", [1], {"a": 1}, float("nan")])
)
keys = st.sampled_from([*NAMES, *NAMES, "x", "Pregnant"])
# Valid cells: pregnant, glucose, pressure, chas (0/1), as ints or floats.
valid_rows = st.tuples(
    st.integers(0, 40) | st.floats(0, 40),
    st.integers(0, 400) | st.floats(0, 400),
    st.integers(0, 300) | st.sampled_from([0.0, -0.0, 299.5]),
    st.sampled_from([0, 1, 0.0, 1.0]),
).map(list)


@st.composite
def damaged(draw: st.DrawFn, records: bool) -> list[Any]:
    """A valid batch, then up to two damages: bad value, extra/missing/renamed key, bad row."""
    batch: list[Any] = draw(st.lists(valid_rows, min_size=1, max_size=8))
    if records:
        batch = [dict(zip(NAMES, r, strict=True)) for r in batch]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(batch) - 1))
        row = batch[i]
        op = draw(st.sampled_from(["value", "add", "drop", "rename", "row"]))
        if op == "row":
            batch[i] = draw(st.sampled_from([None, 1, "x", (1, 2, 3, 4), [1, 2, 3, 4], {}]))
        elif not isinstance(row, dict if records else list):  # a replaced row: leave it
            continue
        elif op == "value" and row:
            key = draw(st.sampled_from(list(row) if records else range(len(row))))
            row[key] = draw(near_numbers)
        elif op == "add":
            if records:
                row[draw(st.sampled_from(["x", "Pregnant", ""]))] = draw(numbers)
            else:
                row.append(draw(numbers))
        elif op == "drop" and row:
            if records:
                del row[draw(st.sampled_from(list(row)))]
            else:
                row.pop()
        elif op == "rename" and records and row:
            row["x"] = row.pop(draw(st.sampled_from(list(row))))
    return batch


def loose_records() -> st.SearchStrategy[list[Any]]:
    loose = st.dictionaries(keys, near_numbers, min_size=3, max_size=5)
    return st.lists(loose | st.sampled_from([[1, 2, 3, 4], "x", None, 1]), max_size=8)


def check_valid(x: np.ndarray) -> None:
    """Independent of the code under test: finite, inside the ranges, chas in {0, 1}."""
    assert np.isfinite(x).all()
    assert ((x >= SCHEMA.lows) & (x <= SCHEMA.highs)).all()
    assert np.isin(x[:, 3], [0.0, 1.0]).all()


@PROPS
@given(damaged(records=True) | loose_records())
def test_records(value: list[Any]) -> None:
    same_outcome(lambda: parsing.parse_records(value, SCHEMA, MAX_ROWS))
    same_outcome(lambda: parsing.parse_json_payload(value, SCHEMA, MAX_ROWS))
    same_outcome(lambda: parsing.parse_json_payload({"instances": value}, SCHEMA, MAX_ROWS))


@PROPS
@given(damaged(records=False), st.none() | st.permutations(NAMES))
def test_rows(value: list[Any], columns: list[str] | None) -> None:
    same_outcome(lambda: parsing.parse_rows(value, SCHEMA, MAX_ROWS, columns=columns))
    payload = {"dataframe_split": {"data": value, **({"columns": columns} if columns else {})}}
    same_outcome(lambda: parsing.parse_json_payload(payload, SCHEMA, MAX_ROWS))


@PROPS
@given(st.dictionaries(keys, st.lists(near_numbers, max_size=4), max_size=5))
def test_columns(value: dict[str, Any]) -> None:
    same_outcome(lambda: parsing.parse_json_payload({"inputs": value}, SCHEMA, MAX_ROWS))


def _dumps(value: Any, style: str) -> bytes:
    """JSON text as clients write it: compact, or Python's default separators."""
    if style == "compact":
        return json.dumps(value, separators=(",", ":")).encode()
    return json.dumps(value).encode()


@PROPS
@given(
    damaged(records=True) | damaged(records=False) | loose_records(),
    st.sampled_from(["compact", "python"]),
)
def test_json_bodies(value: list[Any], style: str) -> None:
    try:
        body = _dumps(value, style)
    except ValueError:  # nan is not JSON; json.dumps writes NaN only with allow_nan
        return
    same_outcome(lambda: parsing.parse_json_body(body, SCHEMA, MAX_ROWS))


# Number spellings JSON refuses but strtod reads (and the reverse), ints beyond 64 bits and
# float64, signed zeros, blanks, and values that are not numbers at all.
json_tokens = st.sampled_from(
    ["0", "1", "-0", "-0.0", "0.5", "01", "-01", "00", "1.", ".5", "-.5", "+1", "1.e2", "1e2",
     "1E+1", "1e-0", "1e05", "2e-400", "1e400", "-1e400", "18446744073709551617", "9" * 30, "1e",
     "-", "--1", "1-", "1 2", " 1", "1 ", "", "true", "null", '"1"', "[1]", "{}", "0x1", "1,5"]
)  # fmt: skip


plain_tokens = st.sampled_from(["0", "1", "2", "0.5", "1e1", "39", "-0.0", "1.25e+1", "0e0", "1E0"])


@st.composite
def json_text(draw: st.DrawFn) -> bytes:
    """Rows or records of near-number tokens, glued with the separators clients use."""
    # Four plain numbers a row, then up to two odd tokens and maybe a row of another width.
    rows = draw(st.lists(st.lists(plain_tokens, min_size=4, max_size=4), min_size=1, max_size=5))
    for _ in range(draw(st.integers(0, 2))):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        row[draw(st.integers(0, 3))] = draw(json_tokens)
    if draw(st.integers(0, 5)) == 0:
        rows.append(draw(st.lists(plain_tokens, min_size=3, max_size=5)))
    sep = draw(st.sampled_from([",", ", ", " ,"]))
    if draw(st.booleans()):
        row_sep = draw(st.sampled_from(["],[", "], [", "] ,[", "],\n["]))
        text = "[[" + row_sep.join(sep.join(r) for r in rows) + "]]"
    else:
        colon = draw(st.sampled_from([":", ": "]))
        order = draw(st.permutations(NAMES + ["x"] * draw(st.integers(0, 1))))
        records = []
        for r in rows:
            names = order if draw(st.integers(0, 5)) else draw(st.permutations(order))
            records.append(sep.join(f'"{n}"{colon}{v}' for n, v in zip(names, r, strict=False)))
        text = "[{" + draw(st.sampled_from(["},{", "}, {"])).join(records) + "}]"
    before, after = draw(st.sampled_from(["", " "])), draw(st.sampled_from(["", " ", "\n"]))
    return (before + text + after).encode()


@settings(max_examples=1000, deadline=None)
@given(json_text())
def test_json_number_text(body: bytes) -> None:
    same_outcome(lambda: parsing.parse_json_body(body, SCHEMA, MAX_ROWS))


@PROPS
@given(st.text(alphabet='0123456789eE+-. ,[]{}:"\x01\n', max_size=60))
def test_json_fast_alphabet(text: str) -> None:
    same_outcome(lambda: parsing.parse_json_body(text.encode(), SCHEMA, MAX_ROWS))


R = '"pregnant":1,"glucose":2,"pressure":3,"chas":0'
P = R.replace(",", ", ").replace(":", ": ")


@pytest.mark.parametrize(
    "body",
    [
        "[[1,2,3,0],[],[1,2,3,0]]",  # an empty row (numpy's reader skips empty lines)
        "[[1,2,3,0],[1,2,3,0],[]]",
        "[[]]",
        "[{}]",
        "[[1,2,3,0]] ]",
        "[[1,2,3,0]\t]",
        "[[1,2,3,0],[1,2,3,0\u0000]]",
        f'[{{{R}}},{{\x011,"glucose":2,"pressure":3,"chas":0}}]',  # a raw control byte
        f'[{{{R}}},{{{R},"chas":1}}]',  # a duplicate key: orjson keeps the last
        f"[{{{R}}},{{{R.replace(',', ', ')}}}]",
        f"[{{{R}}}, {{{R}}}]",
        f"[{{{R}}} ,{{{R}}}]",
        f"[{{{R.replace(':1', ':1,')}}}]",
        "[[1,2,3,0]," + ",".join(["[1,2,3,0]"] * MAX_ROWS) + "]",  # too many rows
        # Numbers strtod reads and JSON refuses, at the start, middle and end of the text:
        *(
            f"[[{row}]]"
            for bad in ["+1", "1.e1", "1.E1", ".5", "-.5", "1.", "01", "-01", "00", "-0", " -0 "]
            for row in [f"{bad},2,3,0", f"1,{bad},3,0", f"1,2,3,{bad}", f"1, {bad}, 3, 0"]
        ),
        # Records whose bytes are all in place but one, after a good first record (which sets
        # the expected keys): each must reach orjson, which refuses it.
        *(
            f"[{{{R}}},{bad}]"
            for bad in [
                f"{{1{R}}}",
                f"{{{R.replace(':1', ':{1')}}}",
                f"{{{R.replace(':1', ':1:2')}}}",
                f"{{{R.replace(':1', ':1,')}}}",
                f"{{{R.replace(':1,', ':1,5')}}}",
                f"{{{R.replace(':1,', ':15')}}}",
                f"{{{R.replace('pregnant', 'pergnant')}}}",  # the same letters less its e
                f"{{{R.replace('pregnant', 'pregnanx')}}}",
                f"5{{{R}}}",
                f"{{{R}}}5",
                f",{{{R}}}",
                f"{{{R}}}{{",
                f"{{{R}}},{{{R}}}",
                f"{{{R.replace(':1', ':' + chr(1) + '1')}}}",
                f"{{{R.replace(':1', ':1x')}}}",
                f"{{{R.replace(':1', ':' + chr(34) + '1' + chr(34))}}}",  # a string
            ]
        ),
        f"[{{{R}}}{{{R}}}]",
        f"[{{{P}}}, {{{P}}}]",  # Python's json.dumps separators: taken by the fast path
        f"[{{{P}}},{{{P}}}]",
        f"[{{{P}}}, {{{R}}}]",
        *(
            f"[{{{P}}}, {bad}]"
            for bad in [
                "{" + P.replace(', "g', ',5"g') + "}",
                "{" + P.replace(', "g', ' ,"g') + "}",
                "{" + P.replace(', "g', ',,"g') + "}",
                f"5{{{P}}}",
                f" {{{P}}}",
            ]
        ),
        f"[{{{P}}},5{{{P}}}]",
        f"[{{{P}}}5 {{{P}}}]",
        f"[{{{R.replace(':1', ':+1')}}}]",
        f"[{{{R.replace(':0', ':-0')}}}]",
        f"[{{{R.replace(':2', ':02')}}}]",
    ],
)
def test_json_bodies_the_fast_path_must_leave_alone(body: str) -> None:
    same_outcome(lambda: parsing.parse_json_body(body.encode(), SCHEMA, MAX_ROWS))


# Keys with digits leave a number in the text numpy's reader sees (its field is skipped, never
# read); a misplaced separator must not shift a key's digits into a value's column.
DIGIT_SCHEMA = Schema.from_manifest(
    [{"name": n, "min": -100, "max": 100} for n in ("x1", "x2", "x10")]
)
D = '"x1":1,"x2":2,"x10":3'


@pytest.mark.parametrize(
    "body",
    [
        f"[{{{D}}},{{{D}}}]",
        f"[{{{D}}},{{{D.replace(':1', ':1:5')}}}]",
        f"[{{{D}}},{{{D.replace(':1', ':1,5')}}}]",
        f'[{{{D}}},"x1":{{1,"x2":2,"x10":3}}]',
        f"[{{{D}}}{{{D.replace(':1', ':1,')}}}]",
        f"[{{{D}}},{{{D}}},{{{D.replace(',', '', 1)}}}]",
        f"[{{{D}}},{{{D.replace('x10', 'x1')}}}]",
        f"[{{{D.replace(':1', ': 1')}}}]",
        f"[{{ {D}}}]",
    ],
)
def test_digit_keys(body: str) -> None:
    def in_range(x: np.ndarray) -> None:
        assert ((x >= DIGIT_SCHEMA.lows) & (x <= DIGIT_SCHEMA.highs)).all()

    same_outcome(lambda: parsing.parse_json_body(body.encode(), DIGIT_SCHEMA, MAX_ROWS), in_range)


bad_cells = st.sampled_from(
    ["-0", "+1", ".5", "2.", "1e2", "1E+1", "007", " 3 ", "\t1", "", " ", "nan", "x", '"1"',
     "1e400", "9" * 30, "-1", "41", "1_0", "1 2", "0x1", *NAMES]
)  # fmt: skip


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    """Valid numeric CSV (numbers in several spellings), then damages to cells and lines."""
    body = draw(st.lists(valid_rows, min_size=1, max_size=6))
    spell = st.sampled_from([repr, str, lambda v: f"{v:g}", lambda v: f" {v!r}"])
    lines = [[draw(spell)(v) for v in row] for row in body]
    for _ in range(draw(st.integers(0, 2))):
        line = lines[draw(st.integers(0, len(lines) - 1))]
        op = draw(st.sampled_from(["cell", "add", "drop", "blank"]))
        if op == "cell" and line:
            line[draw(st.integers(0, len(line) - 1))] = draw(bad_cells)
        elif op == "add":
            line.append(draw(bad_cells | st.just("1")))
        elif op == "drop" and line:
            line.pop()
        elif op == "blank":
            lines.insert(draw(st.integers(0, len(lines))), [draw(st.sampled_from(["", " "]))])
    header = draw(
        st.none()
        | st.permutations(NAMES)
        | st.permutations(NAMES).map(lambda h: [f" {h[0]}", *h[1:]])
        | st.permutations(NAMES).map(lambda h: [f'"{h[0]}"', *h[1:]])
        | st.permutations(NAMES).map(lambda h: [h[0], h[0], *h[2:]])  # a duplicate
        | st.permutations(NAMES).map(lambda h: ["x", *h[1:]])  # an unknown name
        | st.lists(st.sampled_from([*NAMES, "x", "1"]), min_size=3, max_size=5)
    )
    rows = ([header] if header is not None else []) + lines
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    end = draw(st.sampled_from(["", "\n", "\r\n", "\n\n", " "]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return bom + newline.join(",".join(r) for r in rows) + end


@PROPS
@given(csv_text())
def test_csv(text: str) -> None:
    same_outcome(lambda: parsing.parse_csv(text.encode(), SCHEMA, MAX_ROWS))


@PROPS
@given(st.text(alphabet="0123456789eE+-. \t\r\n,", max_size=60))
def test_csv_fast_alphabet(text: str) -> None:
    same_outcome(lambda: parsing.parse_csv(text.encode(), SCHEMA, MAX_ROWS))


@PROPS
@given(st.lists(numbers | st.just(float("inf")) | st.just(float("nan")), min_size=4, max_size=4))
def test_single_row_validation(row: list[Any]) -> None:
    try:
        x = np.array([row], dtype=np.float64)
    except OverflowError:
        return
    valid = bool(
        np.isfinite(x).all()
        and ((x >= SCHEMA.lows) & (x <= SCHEMA.highs)).all()
        and x[0, 3] in (0.0, 1.0)
    )
    kind, _ = outcome(lambda: parsing.validate(x, SCHEMA))
    assert kind == ("matrix" if valid else "error")
    same_outcome(lambda: parsing.validate(x, SCHEMA))
    pairs = [(n, repr(float(v))) for n, v in zip(NAMES, row, strict=True)]
    same_outcome(lambda: parsing.parse_query(pairs, SCHEMA))


def test_too_many_rows_is_refused_by_both_paths() -> None:
    many = [[1, 1, 1, 0]] * (MAX_ROWS + 1)
    same_outcome(lambda: parsing.parse_rows(many, SCHEMA, MAX_ROWS))
    text = "\n".join("1,1,1,0" for _ in many)
    same_outcome(lambda: parsing.parse_csv(text.encode(), SCHEMA, MAX_ROWS))


def test_fast_paths_engage_on_clean_batches() -> None:
    """The optimisation is real: clean batches never reach the per-row code."""
    batch = [[1, 100, 70, 0]] * 10
    recs = [dict(zip(NAMES, r, strict=True)) for r in batch]
    text = "\n".join(",".join(map(str, r)) for r in batch) + "\n"
    with_header = ",".join(NAMES) + "\r\n" + text.replace("\n", "\r\n")
    with (
        mock.patch.object(json_body, "_rows_exact", side_effect=AssertionError("slow rows")),
        mock.patch.object(json_body, "check_json_numbers", side_effect=AssertionError("slow")),
        mock.patch.object(csv_body.csv, "reader", side_effect=AssertionError("slow csv")),
    ):
        assert parsing.parse_rows(batch, SCHEMA, MAX_ROWS).shape == (10, 4)
        assert parsing.parse_records(recs, SCHEMA, MAX_ROWS).shape == (10, 4)
        assert parsing.parse_csv(text.encode(), SCHEMA, MAX_ROWS).shape == (10, 4)
        assert parsing.parse_csv(with_header.encode(), SCHEMA, MAX_ROWS).shape == (10, 4)
        for style in ("compact", "python"):
            for value in (batch, recs, [dict(reversed(r.items())) for r in recs]):
                x = parsing.parse_json_body(_dumps(value, style), SCHEMA, MAX_ROWS)
                np.testing.assert_array_equal(x, np.array(batch, dtype=np.float64))


query_parts = st.sampled_from(
    ["pregnant=1", "glucose=3", "pressure=1", "a", "a=", "=1", "x=1=2", "", "a=%41", "b=1+2",
     "pregnant=2", "c=\u00e9", "d=;"]
)  # fmt: skip


@PROPS
@given(st.lists(query_parts, max_size=6))
def test_plumber_query_pairs_equal_werkzeug_args(parts: list[str]) -> None:
    """The same pairs as werkzeug's ``request.args``, keys first seen in the same order.

    (``request.args.items(multi=True)`` groups a repeated key's values; ``parse_query`` only
    depends on the pairs and on the order in which keys first appear.)
    """
    from collections import Counter

    from flask import Flask, request
    from model_server.api import plumber

    query = "&".join(parts)
    pairs = plumber.query_pairs(query)
    with Flask(__name__).test_request_context("/predict_data?" + query):
        assert Counter(pairs) == Counter(request.args.items(multi=True))
        assert list(dict.fromkeys(k for k, _ in pairs)) == list(request.args.keys())
