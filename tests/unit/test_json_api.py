"""POST /models/<name>/predict: every accepted input shape, and every way to get it wrong."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

DIABETES_ROW = {"pregnant": 1, "glucose": 150, "pressure": 70}
BOSTON_ROW = {
    "crim": 0.01, "zn": 18, "indus": 2.3, "chas": 0, "nox": 0.5,
    "rm": 6, "age": 65, "dis": 4, "rad": 1, "tax": 242,
}  # fmt: skip


def error_of(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


def test_single_record(client: FlaskClient) -> None:
    body = client.post("/models/diabetes/predict", json=DIABETES_ROW).get_json()
    assert body["model"] == "diabetes"
    assert body["version"] == "1.0.0"
    assert body["predictions"] == ["no"]
    assert len(body["probabilities"]) == 1
    assert 0.4 < body["probabilities"][0] < 0.5


@pytest.mark.parametrize(
    "payload",
    [
        [DIABETES_ROW, {"pregnant": 8, "glucose": 190, "pressure": 80}],
        [[1, 150, 70], [8, 190, 80]],
        {"instances": [[1, 150, 70], [8, 190, 80]]},
        {"instances": [DIABETES_ROW, {"pressure": 80, "glucose": 190, "pregnant": 8}]},
        {"inputs": {"pregnant": [1, 8], "glucose": [150, 190], "pressure": [70, 80]}},
    ],
    ids=["records", "rows", "instances-rows", "instances-records", "columnar"],
)
def test_batch_shapes_agree(client: FlaskClient, payload: Any) -> None:
    body = client.post("/models/diabetes/predict", json=payload).get_json()
    assert body["predictions"] == ["no", "yes"]


@pytest.mark.parametrize(
    "csv",
    ["1,150,70\n8,190,80\n", "pressure,glucose,pregnant\n70,150,1\r\n80,190,8\r\n\n"],
    ids=["no-header", "header-reordered"],
)
def test_csv(client: FlaskClient, csv: str) -> None:
    response = client.post("/models/diabetes/predict", data=csv, content_type="text/csv")
    assert response.get_json()["predictions"] == ["no", "yes"]


def test_regression_returns_values_without_probabilities(client: FlaskClient) -> None:
    body = client.post("/models/boston/predict", json=BOSTON_ROW).get_json()
    assert body["predictions"] == [pytest.approx(22.5813, abs=1e-4)]
    assert "probabilities" not in body


def test_list_and_manifest(client: FlaskClient) -> None:
    listing = client.get("/models").get_json()
    assert listing["default_model"] == "diabetes"
    assert [m["name"] for m in listing["models"]] == ["boston", "diabetes", "diabetes-gbt"]
    manifest = client.get("/models/diabetes").get_json()
    assert [f["name"] for f in manifest["features"]] == ["pregnant", "glucose", "pressure"]


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({"pregnant": 1, "glucose": 150}, 422, "missing_feature", "pressure"),
        ({**DIABETES_ROW, "mass": 30}, 422, "unknown_feature", "mass"),
        ({**DIABETES_ROW, "glucose": "150"}, 422, "non_numeric", "glucose"),
        ({**DIABETES_ROW, "glucose": True}, 422, "non_numeric", "glucose"),
        ({**DIABETES_ROW, "glucose": None}, 422, "non_numeric", "glucose"),
        # JSON has no NaN/Infinity; orjson refuses numbers beyond float64 and int64.
        ({**DIABETES_ROW, "glucose": 10**400}, 400, "malformed_body", None),
        ({**DIABETES_ROW, "glucose": 5000}, 422, "out_of_range", "glucose"),
        ({**DIABETES_ROW, "pressure": -1}, 422, "out_of_range", "pressure"),
        ([[1, 150]], 422, "wrong_width", None),
        ([], 422, "empty_batch", None),
        ({"instances": []}, 422, "empty_batch", None),
        ([1, 150, 70], 400, "malformed_body", None),
        ("text", 400, "malformed_body", None),
        ({"instances": [1], "inputs": [2]}, 400, "malformed_body", None),
    ],
)
def test_invalid_json_input(
    client: FlaskClient, payload: Any, status: int, code: str, field: str | None
) -> None:
    response = client.post("/models/diabetes/predict", json=payload)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"]


def test_chas_accepts_only_zero_or_one(client: FlaskClient) -> None:
    response = client.post("/models/boston/predict", json={**BOSTON_ROW, "chas": 0.5})
    assert response.status_code == 422
    assert error_of(response)["code"] == "out_of_range"
    assert error_of(response)["field"] == "chas"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ("1,150,nan\n", 422, "non_finite", "pressure"),
        ("1,150,inf\n", 422, "non_finite", "pressure"),
        ("1,1_50,70\n", 422, "non_numeric", "glucose"),
        ("1,150\n", 422, "wrong_width", None),
        ("pregnant,glucose\n1,150\n", 422, "missing_feature", "pressure"),
        ("pregnant,glucose,pressure,mass\n1,150,70,3\n", 422, "unknown_feature", "mass"),
        ("\n\n", 422, "empty_batch", None),
        ('1,"150\n', 400, "malformed_body", None),
    ],
)
def test_invalid_csv_input(
    client: FlaskClient, body: str, status: int, code: str, field: str | None
) -> None:
    response = client.post("/models/diabetes/predict", data=body, content_type="text/csv")
    assert response.status_code == status, response.get_json()
    assert error_of(response)["code"] == code
    assert error_of(response).get("field") == field


def test_invalid_utf8_csv_is_400(client: FlaskClient) -> None:
    response = client.post("/models/diabetes/predict", data=b"\xff\xfe1", content_type="text/csv")
    assert response.status_code == 400


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/models/diabetes/predict", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_body"


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    response = client.post("/models/diabetes/predict", data="pregnant=1", content_type="text/plain")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_unknown_model_is_404(client: FlaskClient) -> None:
    response = client.post("/models/<script>/predict", json=DIABETES_ROW)
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_model"


def test_too_many_rows_is_413(make_app: Any) -> None:
    client = make_app(max_rows=3).test_client()
    response = client.post("/models/diabetes/predict", json=[[1, 150, 70]] * 4)
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_many_rows"
    ok = client.post("/models/diabetes/predict", json=[[1, 150, 70]] * 3)
    assert ok.status_code == 200


def test_body_too_large_is_413_json(make_app: Any) -> None:
    client = make_app(max_body_bytes=100).test_client()
    response = client.post("/models/diabetes/predict", json=[[1, 150, 70]] * 50)
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = client.get("/models/diabetes/predict")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
