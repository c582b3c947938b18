"""Properties of string (categorical) features: whatever a client sends for one, the answer is
a prediction only for one of its categories; anything else is a 4xx JSON error naming the
feature, on every input format and route.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from generic_bundles import COLORS, SIZES, Case, shop_frame, write_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_server.core.errors import RequestError
from model_server.core.parsing import parse_csv, parse_json_payload, parse_query, validate
from model_server.core.schema import Schema
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SCHEMA = Schema.from_manifest(
    [
        {"name": "color", "type": "string", "allowed": list(COLORS)},
        {"name": "price", "min": 0, "max": 200},
        {"name": "size", "type": "string", "allowed": list(SIZES)},
    ]
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),  # what JSON can carry
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=5,
)
not_a_color = json_values.filter(lambda v: v not in COLORS)
text_not_a_color = st.text(max_size=15).filter(lambda v: v not in COLORS)


def _refused(call: Callable[[], Any]) -> RequestError:
    with pytest.raises(RequestError) as refused:
        call()
    return refused.value


@SETTINGS
@given(value=not_a_color, shape=st.sampled_from(["record", "rows", "columns", "split"]))
def test_any_json_value_but_a_category_is_refused_naming_the_feature(
    value: Any, shape: str
) -> None:
    record = {"color": value, "price": 10, "size": "M"}
    payload: Any = {
        "record": record,
        "rows": [[value, 10, "M"]],
        "columns": {"inputs": {"color": [value], "price": [10], "size": ["M"]}},
        "split": {
            "dataframe_split": {"columns": ["size", "color", "price"], "data": [["M", value, 10]]}
        },
    }[shape]
    error = _refused(lambda: parse_json_payload(payload, SCHEMA, 100))
    assert (error.status, error.field) == (422, "color")


@SETTINGS
@given(value=text_not_a_color)
def test_any_text_but_a_category_is_refused_in_csv_and_query(value: str) -> None:
    out = io.StringIO()
    csv.writer(out).writerow([value, "10", "M"])  # CRLF: a CR or LF in a cell is quoted
    body = out.getvalue().encode()
    error = _refused(lambda: parse_csv(body, SCHEMA, 100))
    assert error.status in (400, 422)
    if error.status == 422:  # 400: a cell the csv module itself cannot read as one line
        assert error.field == "color"
    error = _refused(
        lambda: parse_query([("color", value), ("price", "10"), ("size", "M")], SCHEMA)
    )
    assert (error.status, error.field) == (422, "color")


@SETTINGS
@given(color=st.sampled_from(COLORS), size=st.sampled_from(SIZES), price=st.floats(0, 200))
def test_every_category_with_valid_numbers_is_accepted_as_it_is(
    color: str, size: str, price: float
) -> None:
    x = parse_json_payload([{"size": size, "price": price, "color": color}], SCHEMA, 100)
    assert x.tolist() == [[color, price, size]]
    assert type(x[0, 1]) is float
    assert (
        parse_query([("color", color), ("price", repr(price)), ("size", size)], SCHEMA).tolist()
        == x.tolist()
    )


def test_numbers_of_a_mixed_model_keep_every_numeric_check() -> None:
    for bad, code in (
        (float("nan"), "non_finite"),
        (500.0, "out_of_range"),
        (10**400, "non_finite"),
    ):
        table = np.array([["red", bad, "M"]], dtype=object)
        error = _refused(lambda table=table: validate(table, SCHEMA))
        assert (error.code, error.field) == (code, "price")


@pytest.fixture(scope="module")
def shop_app(make_app: Callable[..., Flask], tmp_path_factory: pytest.TempPathFactory) -> Flask:
    frame, y = shop_frame()
    prep = ColumnTransformer(
        [("s", OneHotEncoder(), ["color", "size"]), ("n", StandardScaler(), ["price", "rating"])]
    )
    model = Pipeline([("prep", prep), ("lr", LogisticRegression(max_iter=500))]).fit(frame, y)
    out: Path = tmp_path_factory.mktemp("shop")
    write_bundle(Case("shop", model, frame, y, "classification", named=True), out)
    return make_app(model_dir=out, default_model="shop")


@SETTINGS
@given(value=not_a_color)
def test_the_json_routes_answer_a_bad_category_with_a_4xx_json_naming_it(
    shop_app: Flask, value: Any
) -> None:
    client: FlaskClient = shop_app.test_client()
    record = {"color": value, "price": 10, "size": "M", "rating": 3}
    for route, body in (
        ("/models/shop/predict", record),
        ("/invocations", {"dataframe_records": [record]}),
    ):
        response = client.post(route, json=body)
        assert 400 <= response.status_code < 500
        assert response.get_json()["error"].get("field") == "color", (value, response.get_json())
    response = client.post("/v1/models/shop:predict", json={"instances": [record]})
    assert response.status_code == 422 and "color" in response.get_json()["error"]


@SETTINGS
@given(value=text_not_a_color)
def test_the_plumber_route_answers_a_bad_category_with_422_naming_it(
    shop_app: Flask, value: str
) -> None:
    query = urlencode({"color": value, "price": 10, "size": "M", "rating": 3})
    response = shop_app.test_client().get(f"/models/shop/predict_data?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "color"
