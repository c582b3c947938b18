"""The plumber-compatible routes answer exactly as the R service did."""

from __future__ import annotations

from flask.testing import FlaskClient

BOSTON_QUERY = "crim=0.01&zn=18&indus=2.3&chas=0&nox=0.5&rm=6&age=65&dis=4&rad=1&tax=242"


def test_default_model_answers_the_reference_query_exactly(client: FlaskClient) -> None:
    response = client.get("/predict_data?pregnant=1&glucose=3&pressure=1")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.data == b'{"Answer":["no"]}'


def test_named_classifier_answers_yes_for_a_high_risk_row(client: FlaskClient) -> None:
    response = client.get("/models/diabetes/predict_data?pregnant=8&glucose=190&pressure=80")
    assert response.get_json() == {"Answer": ["yes"]}


def test_boston_answers_the_value_rounded_to_four_decimals(client: FlaskClient) -> None:
    response = client.get(f"/models/boston/predict_data?{BOSTON_QUERY}")
    assert response.status_code == 200
    assert response.get_json() == {"Answer": [22.5813]}


def test_gbt_model_answers_with_a_label(client: FlaskClient) -> None:
    query = "pregnant=1&glucose=90&pressure=70&triceps=20&insulin=80&mass=25&pedigree=0.3&age=25"
    response = client.get(f"/models/diabetes-gbt/predict_data?{query}")
    assert response.get_json() == {"Answer": ["no"]}


def test_missing_feature_is_422_naming_it(client: FlaskClient) -> None:
    response = client.get("/predict_data?pregnant=1&glucose=3")
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": "missing_feature",
        "message": "query: missing feature 'pressure'",
        "field": "pressure",
    }


def test_non_numeric_value_is_422(client: FlaskClient) -> None:
    response = client.get("/predict_data?pregnant=one&glucose=3&pressure=1")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "non_numeric"
    assert response.get_json()["error"]["field"] == "pregnant"


def test_unknown_model_is_404_listing_known_models(client: FlaskClient) -> None:
    response = client.get("/models/nope/predict_data?pregnant=1&glucose=3&pressure=1")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model"
    assert "boston, diabetes, diabetes-gbt" in error["message"]
