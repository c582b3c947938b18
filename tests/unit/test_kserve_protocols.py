"""KServe V1 and the Open Inference Protocol v2 as their official clients use them.

Triton's client sends no Content-Type and, by default, the binary tensor data extension;
KServe's client sends V1 ``instances``. Both expect errors as ``{"error": "<string>"}``.
The stack tests run the real clients against the load balancer; these pin the wire format.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from flask.testing import FlaskClient

ROW = [1.0, 3.0, 1.0]  # the plumber example: answered "no"


def framed(header: dict, *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    """A binary-extension body and its header, as Triton's client frames it."""
    head = orjson.dumps(header)
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(len(head))}


def unframe(data: bytes, header_length: int) -> tuple[dict, bytes]:
    return orjson.loads(data[:header_length]), data[header_length:]


def bytes_tensor(*items: str) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in items)


def test_v1_predict_answers_predictions(client: FlaskClient) -> None:
    response = client.post("/v1/models/diabetes:predict", json={"instances": [ROW, [8, 190, 80]]})
    assert response.status_code == 200
    assert response.get_json() == {"predictions": ["no", "yes"]}


def test_v1_predict_takes_records_and_inputs(client: FlaskClient) -> None:
    record = {"pregnant": 1, "glucose": 3, "pressure": 1}
    response = client.post("/v1/models/diabetes:predict", json={"inputs": [record]})
    assert response.get_json() == {"predictions": ["no"]}


def test_v1_predict_without_content_type_is_json(client: FlaskClient) -> None:
    response = client.post("/v1/models/diabetes:predict", data=b'{"instances": [[1, 3, 1]]}')
    assert response.get_json() == {"predictions": ["no"]}


def test_v1_readiness_liveness_and_listing(client: FlaskClient) -> None:
    assert client.get("/").get_json() == {"status": "alive"}
    assert client.get("/v1/models/diabetes").get_json() == {"name": "diabetes", "ready": True}
    assert "boston" in client.get("/v1/models").get_json()["models"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"instances": [[1, 3]]}, 422, "wrong_width"),
        ({"instances": []}, 422, "empty_batch"),
        ({"rows": [ROW]}, 400, '"instances" or "inputs"'),
        ({"instances": [ROW], "extra": 1}, 400, "'extra'"),
        ({"instances": [{"pregnant": 1, "glucose": 3}]}, 422, "pressure"),
    ],
)
def test_v1_errors_are_one_string_naming_the_problem(
    client: FlaskClient, body: dict, status: int, needle: str
) -> None:
    response = client.post("/v1/models/diabetes:predict", json=body)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert isinstance(error, str)
    assert needle in error


def test_v1_unknown_model_is_404_and_get_on_predict_is_405(client: FlaskClient) -> None:
    response = client.post("/v1/models/nope:predict", json={"instances": [ROW]})
    assert response.status_code == 404
    assert "unknown_model" in response.get_json()["error"]
    response = client.get("/v1/models/diabetes:predict")
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_v2_infer_without_content_type_is_json(client: FlaskClient) -> None:
    request = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]}
    response = client.post("/v2/models/diabetes/infer", data=orjson.dumps(request))
    assert response.status_code == 200
    assert response.get_json()["outputs"][0]["data"] == ["no"]


@pytest.mark.parametrize(
    ("datatype", "dtype"), [("FP64", "<f8"), ("FP32", "<f4"), ("INT64", "<i8")]
)
def test_v2_binary_inputs_are_read(client: FlaskClient, datatype: str, dtype: str) -> None:
    raw = np.array([ROW, [8, 190, 80]], dtype=dtype).tobytes()
    spec = {"name": "x", "shape": [2, 3], "datatype": datatype}
    body, headers = framed(
        {"inputs": [{**spec, "parameters": {"binary_data_size": len(raw)}}]}, raw
    )
    response = client.post("/v2/models/diabetes/infer", data=body, headers=headers)
    assert response.status_code == 200, response.data
    assert response.get_json()["outputs"][0]["data"] == ["no", "yes"]


def test_v2_binary_outputs_are_framed(client: FlaskClient) -> None:
    request = {
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [ROW, [8, 190, 80]]}],
        "parameters": {"binary_data_output": True},
    }
    response = client.post("/v2/models/diabetes/infer", json=request)
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    header, data = unframe(response.data, int(response.headers["Inference-Header-Content-Length"]))
    predict, probability = header["outputs"]
    assert "data" not in predict and "data" not in probability
    n_labels = predict["parameters"]["binary_data_size"]
    assert data[:n_labels] == bytes_tensor("no", "yes")
    probs = np.frombuffer(data[n_labels:], dtype="<f8")
    assert len(probs) == 2 and probs[0] < 0.5 < probs[1]


def test_v2_one_output_in_binary_the_other_in_json(client: FlaskClient) -> None:
    request = {
        "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}],
        "outputs": [
            {"name": "predict"},
            {"name": "probability", "parameters": {"binary_data": True}},
        ],
    }
    response = client.post("/v2/models/diabetes/infer", json=request)
    header, data = unframe(response.data, int(response.headers["Inference-Header-Content-Length"]))
    assert header["outputs"][0]["data"] == ["no"]
    assert header["outputs"][1]["parameters"]["binary_data_size"] == 8 == len(data)


def test_v2_bytes_feature_tensors_in_binary_are_refused_as_non_numeric(client: FlaskClient) -> None:
    raw = bytes_tensor("a")
    spec = {"name": "x", "shape": [1, 1], "datatype": "BYTES"}
    body, headers = framed(
        {"inputs": [{**spec, "parameters": {"binary_data_size": len(raw)}}]}, raw
    )
    response = client.post("/v2/models/diabetes/infer", data=body, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("non_numeric: ")


@pytest.mark.parametrize(
    ("header", "payload", "needle"),
    [
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 3],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            },
            b"\0" * 24,
            "belong to no input",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 3],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": 32},
                    }
                ]
            },
            b"\0" * 24,
            "binary_data_size",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 3],
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": 20},
                    }
                ]
            },
            b"\0" * 20,
            "whole number",
        ),
    ],
)
def test_v2_inconsistent_binary_framing_is_400(
    client: FlaskClient, header: dict, payload: bytes, needle: str
) -> None:
    body, headers = framed(header, payload)
    response = client.post("/v2/models/diabetes/infer", data=body, headers=headers)
    assert response.status_code == 400
    assert needle in response.get_json()["error"]


def test_v2_header_length_beyond_the_body_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/v2/models/diabetes/infer",
        data=b"{}",
        headers={"Inference-Header-Content-Length": "99"},
    )
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.get_json()["error"]


def test_v2_version_routes_answer_for_the_loaded_version_only(client: FlaskClient) -> None:
    version = client.get("/v2/models/diabetes").get_json()["versions"][0]
    base = f"/v2/models/diabetes/versions/{version}"
    assert client.get(base).get_json()["name"] == "diabetes"
    assert client.get(f"{base}/ready").get_json() == {"name": "diabetes", "ready": True}
    request = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]}
    assert client.post(f"{base}/infer", json=request).get_json()["model_version"] == version
    missing = client.post("/v2/models/diabetes/versions/9.9.9/infer", json=request)
    assert missing.status_code == 404
    assert "9.9.9" in missing.get_json()["error"]


def test_own_routes_keep_the_error_object(client: FlaskClient) -> None:
    response = client.post("/models/diabetes/predict", json={"instances": [[1, 3]]})
    assert response.get_json()["error"]["code"] == "wrong_width"


@pytest.mark.parametrize("path", ["/v1/models/diabetes:predict", "/v2/models/diabetes/infer"])
def test_curl_d_form_type_is_read_as_json(client: FlaskClient, path: str) -> None:
    # `curl -d` labels its body application/x-www-form-urlencoded; KServe's servers ignore it.
    body = (
        {"instances": [ROW]}
        if path.startswith("/v1/")
        else {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]}
    )
    response = client.post(
        path, data=orjson.dumps(body), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def test_other_media_types_are_415_on_v1(client: FlaskClient) -> None:
    response = client.post("/v1/models/diabetes:predict", data="1,3,1", content_type="text/csv")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]
