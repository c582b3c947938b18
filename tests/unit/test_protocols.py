"""SageMaker, MLflow and Open Inference Protocol v2 adapters."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from unit_helpers import BOSTON_COLUMNS, BOSTON_VALUES


def test_ping(client: FlaskClient) -> None:
    assert client.get("/ping").status_code == 200


def test_invocations_csv_on_the_default_model(client: FlaskClient) -> None:
    response = client.post("/invocations", data="1,3,1\n8,190,80\n", content_type="text/csv")
    assert response.get_json() == {"predictions": ["no", "yes"]}


def test_invocations_csv_answer_when_accept_is_csv(client: FlaskClient) -> None:
    response = client.post(
        "/invocations", data="1,3,1\n", content_type="text/csv", headers={"Accept": "text/csv"}
    )
    assert response.mimetype == "text/csv"
    assert response.data == b"no\n"


def test_target_model_header_selects_the_model(client: FlaskClient) -> None:
    response = client.post(
        "/invocations",
        data=",".join(map(str, BOSTON_VALUES)),
        content_type="text/csv",
        headers={"X-Amzn-SageMaker-Target-Model": "boston"},
    )
    assert response.get_json()["predictions"] == [pytest.approx(22.5813, abs=1e-4)]


def test_unknown_target_model_is_404(client: FlaskClient) -> None:
    response = client.post(
        "/invocations",
        data="1,3,1",
        content_type="text/csv",
        headers={"X-Amzn-SageMaker-Target-Model": "nope"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["glucose", "pregnant", "pressure"], "data": [[3, 1, 1]]}},
        {"dataframe_split": {"data": [[1, 3, 1]]}},
        {"dataframe_records": [{"pregnant": 1, "glucose": 3, "pressure": 1}]},
        {"instances": [{"pregnant": 1, "glucose": 3, "pressure": 1}]},
        {"inputs": {"pregnant": [1], "glucose": [3], "pressure": [1]}, "params": {}},
    ],
    ids=["split", "split-no-columns", "records", "instances", "inputs"],
)
def test_mlflow_formats(client: FlaskClient, payload: Any) -> None:
    response = client.post("/invocations", json=payload)
    assert response.get_json() == {"predictions": ["no"]}


def test_mlflow_split_with_unknown_column(client: FlaskClient) -> None:
    payload = {"dataframe_split": {"columns": ["glucose", "pregnant", "x"], "data": [[3, 1, 1]]}}
    response = client.post("/invocations", json=payload)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "x"


def test_invocations_wrong_content_type(client: FlaskClient) -> None:
    response = client.post("/invocations", data="x", content_type="application/xml")
    assert response.status_code == 415


def test_mlflow_health_and_version(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/version").get_json() == {"version": "1.0.0"}


# -- OIP v2 ----------------------------------------------------------------------------------


def test_oip_health_and_server_metadata(client: FlaskClient) -> None:
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    assert client.get("/v2").get_json()["name"] == "modelfleet"
    assert client.get("/v2/models/diabetes/ready").get_json() == {
        "name": "diabetes",
        "ready": True,
    }


def test_oip_model_metadata(client: FlaskClient) -> None:
    meta = client.get("/v2/models/boston").get_json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert meta["parameters"]["features"] == BOSTON_COLUMNS


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "INT64"])
def test_oip_matrix_tensor(client: FlaskClient, datatype: str) -> None:
    payload = {
        "id": "req-1",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 3],
                "datatype": datatype,
                "data": [[1, 3, 1], [8, 190, 80]],
            }
        ],
    }
    body = client.post("/v2/models/diabetes/infer", json=payload).get_json()
    assert body["model_name"] == "diabetes"
    assert body["id"] == "req-1"
    assert body["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["no", "yes"],
    }
    assert body["outputs"][1]["name"] == "probability"


@pytest.mark.parametrize("shape", [[1], [1, 1]])
def test_oip_tensor_per_feature(client: FlaskClient, shape: list[int]) -> None:
    inputs = [
        {"name": name, "shape": shape, "datatype": "FP64", "data": [value]}
        for name, value in zip(BOSTON_COLUMNS, BOSTON_VALUES, strict=True)
    ]
    body = client.post("/v2/models/boston/infer", json={"inputs": inputs}).get_json()
    assert body["outputs"][0]["data"] == [pytest.approx(22.5813, abs=1e-4)]


def test_oip_outputs_selection(client: FlaskClient) -> None:
    payload = {
        "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 3, 1]}],
        "outputs": [{"name": "probability"}],
    }
    body = client.post("/v2/models/diabetes/infer", json=payload).get_json()
    assert [o["name"] for o in body["outputs"]] == ["probability"]


def tensor(shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": "x", "shape": shape, "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("tensor", "status", "code"),
    [
        (tensor([1, 2], "FP64", [1, 3]), 422, "wrong_width"),
        (tensor([1, 3], "FP64", [1, 3]), 400, "malformed_body"),
        (tensor([1, 3], "BYTES", ["a", "b", "c"]), 422, "non_numeric"),
        (tensor([1, 3], "INT32", [1, 3.5, 1]), 422, "non_numeric"),
        (tensor([0, 3], "FP64", []), 422, "empty_batch"),
        (tensor([1, 3], "FP64", [1, 3, 1000]), 422, "out_of_range"),
        (tensor([3], "FP64", [1, 3, 1]), 422, "wrong_width"),
    ],
)
def test_oip_invalid_tensors(
    client: FlaskClient, tensor: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/v2/models/diabetes/infer", json={"inputs": [tensor]})
    assert response.status_code == status
    # The protocol's error shape: one string, starting with the code.
    assert response.get_json()["error"].startswith(f"{code}: ")


def test_oip_missing_feature_tensor(client: FlaskClient) -> None:
    inputs = [
        {"name": "pregnant", "shape": [1], "datatype": "FP64", "data": [1]},
        {"name": "glucose", "shape": [1], "datatype": "FP64", "data": [3]},
    ]
    response = client.post("/v2/models/diabetes/infer", json={"inputs": inputs})
    assert response.status_code == 422
    assert "'pressure'" in response.get_json()["error"]


def test_oip_unknown_model(client: FlaskClient) -> None:
    assert client.get("/v2/models/nope").status_code == 404
    assert client.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404
