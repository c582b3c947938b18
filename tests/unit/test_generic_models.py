"""Your own models: any supported scikit-learn estimator, served on every protocol.

Each model here is fitted in the tests (``generic_bundles``) on data scikit-learn ships, or on a
synthetic frame with string columns through ``Pipeline(ColumnTransformer(OneHotEncoder,
StandardScaler), LogisticRegression)``, written as a bundle and served by ``create_app``. The
specification: every route answers exactly what the estimator's own ``predict`` answers for
the same rows, with ``predict_proba``'s probabilities per class, and a string feature takes
only its categories.
"""

from __future__ import annotations

import csv
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from generic_bundles import COLORS, Case, cases, write_bundle
from unit_helpers import sample

Routes = dict[str, list[Any]]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Case], Path]:
    """Every case, fitted once, with the directory holding their bundles."""
    out = tmp_path_factory.mktemp("generic-models")
    all_cases = cases()
    assert [c.name for c in all_cases] == CASES
    for case in all_cases:
        write_bundle(case, out)
    return {c.name: c for c in all_cases}, out


@pytest.fixture(scope="module")
def generic_app(make_app: Callable[..., Flask], fitted: tuple[dict[str, Case], Path]) -> Flask:
    return make_app(model_dir=fitted[1], default_model="shop")


@pytest.fixture
def gclient(generic_app: Flask) -> FlaskClient:
    return generic_app.test_client()


def spread(frame: pd.DataFrame, n: int = 7) -> pd.DataFrame:
    """``n`` rows spread over the frame (the datasets are sorted by class)."""
    return frame.iloc[np.linspace(0, len(frame) - 1, n).astype(int)]


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v if isinstance(v, str) else float(v)) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]


def csv_text(rows: pd.DataFrame, header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(rows.columns)
    writer.writerows(
        [
            [v if isinstance(v, str) else repr(float(v)) for v in rec.values()]
            for rec in records(rows)
        ]
    )
    return out.getvalue()


def tensors(case: Case, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One OIP v2 tensor per feature: BYTES for strings, FP64 for numbers."""
    return [
        {
            "name": name,
            "shape": [len(rows)],
            "datatype": "BYTES" if rows[name].dtype.kind not in "fiu" else "FP64",
            "data": [v if isinstance(v, str) else float(v) for v in rows[name]],
        }
        for name in rows.columns
    ]


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def every_route(client: FlaskClient, case: Case, rows: pd.DataFrame) -> Routes:
    """The predictions of ``rows`` through every protocol route, by route."""
    name, recs = case.name, records(rows)
    target = {"X-Amzn-SageMaker-Target-Model": name}
    split = {
        "dataframe_split": {"columns": list(rows.columns), "data": [list(r.values()) for r in recs]}
    }
    v2 = ok(client.post(f"/v2/models/{name}/infer", json={"inputs": tensors(case, rows)}))
    return {
        "plumber GET": [
            ok(client.get(f"/models/{name}/predict_data?{urlencode(r)}"))["Answer"][0] for r in recs
        ],
        "own JSON": ok(client.post(f"/models/{name}/predict", json=recs))["predictions"],
        "own CSV": ok(
            client.post(
                f"/models/{name}/predict", data=csv_text(rows, header=True), content_type="text/csv"
            )
        )["predictions"],
        "SageMaker CSV": ok(
            client.post(
                "/invocations",
                data=csv_text(rows, header=False),
                content_type="text/csv",
                headers=target,
            )
        )["predictions"],
        "MLflow dataframe_split": ok(client.post("/invocations", json=split, headers=target))[
            "predictions"
        ],
        "MLflow dataframe_records": ok(
            client.post("/invocations", json={"dataframe_records": recs}, headers=target)
        )["predictions"],
        "KServe V1": ok(client.post(f"/v1/models/{name}:predict", json={"instances": recs}))[
            "predictions"
        ],
        "OIP v2": next(o["data"] for o in v2["outputs"] if o["name"] == "predict"),
    }


CASES = [
    "iris-lr",
    "iris-knn",
    "wine-forest",
    "cancer-hgb",
    "cancer-svc",
    "diabetes-tree",
    "diabetes-hgb",
    "shop",
    "shop-binary",
    "shop-price",
]


@pytest.mark.parametrize("name", CASES)
def test_every_route_answers_the_estimators_own_predict(
    gclient: FlaskClient, fitted: tuple[dict[str, Case], Path], name: str
) -> None:
    case = fitted[0][name]
    rows = spread(case.frame)
    expected = case.expected(rows)
    answers = every_route(gclient, case, rows)
    if case.task == "regression":  # plumber rounds values to 4 places, as plumber does
        assert answers.pop("plumber GET") == [round(v, 4) for v in expected]
    assert answers == dict.fromkeys(answers, expected)


@pytest.mark.parametrize(
    "name", [n for n in CASES if n not in ("diabetes-tree", "diabetes-hgb", "shop-price")]
)
def test_classifiers_answer_each_class_probability(
    gclient: FlaskClient, fitted: tuple[dict[str, Case], Path], name: str
) -> None:
    case = fitted[0][name]
    rows = spread(case.frame)
    proba = case.proba(rows)
    body = ok(gclient.post(f"/models/{name}/predict", json=records(rows)))
    assert body["probabilities"] == [dict(zip(case.labels, p, strict=True)) for p in proba]
    v2 = ok(gclient.post(f"/v2/models/{name}/infer", json={"inputs": tensors(case, rows)}))
    out = {o["name"]: o for o in v2["outputs"]}
    assert set(out) == {"predict", "probabilities"}
    assert out["probabilities"]["shape"] == [len(rows), len(case.labels)]
    assert out["probabilities"]["data"] == [p for row in proba for p in row]


def test_a_numeric_model_fitted_on_an_array_gets_the_array_and_one_on_a_frame_a_frame(
    generic_app: Flask,
) -> None:
    models = generic_app.extensions["modelfleet"].registry.models
    x = np.array([[5.1, 3.5, 1.4, 0.2]])
    assert models["iris-lr"].predictor.model_input(x) is x
    frame = models["iris-knn"].predictor.model_input(x)
    assert list(frame.columns) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_string_columns_reach_the_pipeline_as_named_strings_and_numbers_as_float64(
    generic_app: Flask,
) -> None:
    predictor = generic_app.extensions["modelfleet"].registry.models["shop"].predictor
    x = np.array([["red", 10.0, "S", 3.0]], dtype=object)
    frame = predictor.model_input(x)
    assert list(frame.columns) == ["color", "price", "size", "rating"]
    assert (frame["price"].dtype, frame["rating"].dtype) == (np.float64, np.float64)
    assert frame["color"].tolist() == ["red"]


# --------------------------------------------------------------------------------------------
# Refusals of string features


@pytest.mark.parametrize(
    ("send", "route"),
    [
        ("json", "/models/shop/predict"),
        ("csv", "/models/shop/predict"),
        ("query", "/models/shop/predict_data"),
        ("mlflow", "/invocations"),
    ],
)
def test_a_value_outside_the_categories_is_422_naming_the_field_and_the_categories(
    gclient: FlaskClient, send: str, route: str
) -> None:
    row = {"color": "purple", "price": 10.0, "size": "M", "rating": 3.0}
    if send == "json":
        response = gclient.post(route, json=row)
    elif send == "csv":
        response = gclient.post(route, data="purple,10,M,3\n", content_type="text/csv")
    elif send == "query":
        response = gclient.get(f"{route}?{urlencode(row)}")
    else:
        response = gclient.post(route, json={"dataframe_records": [row]})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("out_of_range", "color")
    assert error["message"] == (
        'row 0: color must be one of "blue", "green", "gris, foncé", "light blue", "red"; '
        'got "purple"'
    )


def test_oip_v2_refuses_a_bad_category_in_its_message_form(gclient: FlaskClient) -> None:
    inputs = [
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["Red"]},
        {"name": "price", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "size", "shape": [1], "datatype": "BYTES", "data": ["S"]},
        {"name": "rating", "shape": [1], "datatype": "FP64", "data": [1.0]},
    ]
    response = gclient.post("/v2/models/shop/infer", json={"inputs": inputs})
    assert response.status_code == 422
    assert response.get_json()["error"].startswith(
        'out_of_range: row 0: color must be one of "blue"'
    )


def test_oip_v2_takes_string_features_only_as_per_feature_tensors(gclient: FlaskClient) -> None:
    matrix = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}
    response = gclient.post("/v2/models/shop/infer", json={"inputs": [matrix]})
    assert response.status_code == 400
    assert "send one tensor per feature" in response.get_json()["error"]
    numbers_as_text = {"name": "price", "shape": [1], "datatype": "BYTES", "data": ["1"]}
    response = gclient.post("/v2/models/shop/infer", json={"inputs": [numbers_as_text]})
    assert (response.status_code, response.get_json()["error"][:11]) == (422, "non_numeric")


def test_numbers_stay_strictly_numbers_beside_string_features(gclient: FlaskClient) -> None:
    row = {"color": "red", "price": "10", "size": "M", "rating": 3}
    response = gclient.post("/models/shop/predict", json=row)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "price"
    assert response.get_json()["error"]["code"] == "non_numeric"


def test_a_long_category_list_is_cut_in_the_message() -> None:
    from model_server.core.errors import RequestError
    from model_server.core.parsing import parse_records
    from model_server.core.schema import Schema

    schema = Schema.from_manifest(
        [{"name": "city", "type": "string", "allowed": [f"c{i:02}" for i in range(40)]}]
    )
    with pytest.raises(RequestError) as refused:
        parse_records([{"city": "nowhere"}], schema, 10)
    assert refused.value.message == (
        'row 0: city must be one of "c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", '
        '"c08", "c09", ... (40 in all); got "nowhere"'
    )


# --------------------------------------------------------------------------------------------
# Metadata, OpenAPI, metrics


def test_oip_v2_metadata_describes_bytes_inputs_and_the_classes(gclient: FlaskClient) -> None:
    meta = ok(gclient.get("/v2/models/shop"))
    assert meta["inputs"] == [
        {"name": "color", "datatype": "BYTES", "shape": [-1]},
        {"name": "price", "datatype": "FP64", "shape": [-1]},
        {"name": "size", "datatype": "BYTES", "shape": [-1]},
        {"name": "rating", "datatype": "FP64", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert meta["parameters"]["classes"] == ["high", "low", "mid"]
    assert meta["parameters"]["categories"]["size"] == ["L", "M", "S"]


def test_openapi_documents_string_features_and_per_class_answers(gclient: FlaskClient) -> None:
    doc = ok(gclient.get("/openapi.json"))
    schemas = doc["components"]["schemas"]
    record = schemas["PredictRequest_shop"]["oneOf"][0]
    assert record["properties"]["color"] == {"type": "string", "enum": sorted(COLORS)}
    assert record["properties"]["price"]["type"] == "number"
    answer = schemas["PredictResponse_shop"]["properties"]
    assert answer["predictions"]["items"] == {"enum": ["high", "low", "mid"]}
    assert answer["probabilities"]["items"]["required"] == ["high", "low", "mid"]
    op = doc["paths"]["/models/shop/predict"]["post"]
    assert op["requestBody"]["content"]["application/json"]["example"]["color"] == "blue"
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse_shop"
    }
    infer = schemas["InferRequest_shop"]["properties"]["inputs"]
    color = infer["prefixItems"][0]
    assert color["properties"]["name"] == {"const": "color"}
    assert color["properties"]["datatype"] == {"const": "BYTES"}


def test_the_examples_of_the_document_are_answered(gclient: FlaskClient) -> None:
    doc = ok(gclient.get("/openapi.json"))
    predict = doc["paths"]["/models/shop/predict"]["post"]["requestBody"]["content"]
    assert ok(gclient.post("/models/shop/predict", json=predict["application/json"]["example"]))
    csv_example = predict["text/csv"]["example"]
    assert ok(gclient.post("/models/shop/predict", data=csv_example, content_type="text/csv"))
    infer = doc["paths"]["/v2/models/shop/infer"]["post"]["requestBody"]["content"]
    assert ok(gclient.post("/v2/models/shop/infer", json=infer["application/json"]["example"]))


def test_predictions_are_counted_by_class_label(
    make_app: Callable[..., Flask], fitted: tuple[dict[str, Case], Path]
) -> None:
    app = make_app(model_dir=fitted[1], default_model="shop")
    case = fitted[0]["shop"]
    rows = spread(case.frame, 20)
    ok(app.test_client().post("/models/shop/predict", json=records(rows)))
    shop = {"model": "shop", "version": "1.0.0"}
    counted = {
        label: sample(app, "modelfleet_predictions_total", {**shop, "class": label})
        for label in case.labels
    }
    assert counted == {label: float(case.expected(rows).count(label)) for label in case.labels}


def test_the_json_route_answers_a_single_record_object(gclient: FlaskClient) -> None:
    body = ok(
        gclient.post(
            "/models/shop/predict",
            json={"color": "light blue", "price": 50.5, "size": "L", "rating": 2},
        )
    )
    assert body["predictions"][0] in ("high", "low", "mid")
    assert json.dumps(body)  # plain JSON all the way down


def test_oip_v2_binary_tensors_carry_strings_and_per_class_probabilities(
    gclient: FlaskClient, fitted: tuple[dict[str, Case], Path]
) -> None:
    """Triton's binary extension, as its client sends string features: length-prefixed UTF-8."""
    case = fitted[0]["shop"]
    rows = spread(case.frame, 3)
    inputs, chunks = [], []
    for name in rows.columns:
        if rows[name].dtype.kind in "fiu":
            raw = np.asarray(rows[name], dtype="<f8").tobytes()
            datatype = "FP64"
        else:
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in rows[name])
            datatype = "BYTES"
        chunks.append(raw)
        inputs.append(
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    response = gclient.post(
        "/v2/models/shop/infer",
        data=header + b"".join(chunks),
        headers={"Inference-Header-Content-Length": str(len(header))},
        content_type="application/octet-stream",
    )
    assert response.status_code == 200, response.data
    n = int(response.headers["Inference-Header-Content-Length"])
    body = json.loads(response.data[:n])
    sizes = [o["parameters"]["binary_data_size"] for o in body["outputs"]]
    predict_raw = response.data[n : n + sizes[0]]
    proba = np.frombuffer(response.data[n + sizes[0] :], dtype="<f8")
    labels, offset = [], 0
    while offset < len(predict_raw):
        (size,) = struct.unpack_from("<I", predict_raw, offset)
        labels.append(predict_raw[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    assert labels == case.expected(rows)
    assert proba.reshape(len(rows), -1).tolist() == case.proba(rows)
