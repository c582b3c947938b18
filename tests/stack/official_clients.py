"""Drive the load balancer with the official Triton and KServe clients; print what they got.

Not a test module: ``test_stack_standard_clients.py`` runs it with the clients' own
environment (``.venv-clients``, requirements/clients.lock), whose kserve pins pandas below 3:

    .venv-clients/bin/python tests/stack/official_clients.py http://127.0.0.1:18080
    .venv-clients/bin/python tests/stack/official_clients.py URL MODEL '[{"feature": value}, ...]'

It prints one JSON object of results; the test asserts on it. The calls are the clients'
documented ones, unchanged: nothing here sets a header or shapes a body by hand.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

ROWS = [[1, 3, 1], [8, 190, 80]]  # diabetes: answered "no", "yes"
BOSTON = [[0.01, 18, 2.3, 0, 0.5, 6, 65, 4, 1, 242]]  # answered 22.5813 (rounded)


def _labels(values: np.ndarray) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.reshape(-1).tolist()]


def run_triton(url: str) -> dict[str, Any]:
    """Triton's HTTP client: health, metadata, JSON and binary inference, an error."""
    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    metadata = client.get_model_metadata("diabetes")
    version = metadata["versions"][0]
    out: dict[str, Any] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("diabetes"),
        "version_ready": client.is_model_ready("diabetes", version),
        "metadata_name": metadata["name"],
    }
    for binary in (False, True):
        x = triton.InferInput("input-0", [2, 3], "FP64")
        x.set_data_from_numpy(np.array(ROWS, dtype=np.float64), binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=binary),
            triton.InferRequestedOutput("probability", binary_data=binary),
        ]
        result = client.infer("diabetes", [x], outputs=outputs, model_version=version)
        out[f"diabetes_{'binary' if binary else 'json'}"] = {
            "predict": _labels(result.as_numpy("predict")),
            "probability": result.as_numpy("probability").tolist(),
            "version": result.get_response()["model_version"],
        }
    # The client's defaults: binary input, every output (no outputs list).
    x = triton.InferInput("input-0", [1, 10], "FP32")
    x.set_data_from_numpy(np.array(BOSTON, dtype=np.float32))
    out["boston_default"] = client.infer("boston", [x]).as_numpy("predict").tolist()
    bad = triton.InferInput("input-0", [1, 2], "FP64")
    bad.set_data_from_numpy(np.array([[1, 3]], dtype=np.float64))
    try:
        client.infer("diabetes", [bad])
        out["error"] = None
    except InferenceServerException as exc:
        out["error"] = {"status": exc.status(), "message": exc.message()}
    client.close()
    return out


async def run_kserve(url: str) -> dict[str, Any]:
    """KServe's REST client: V1 liveness, readiness and predict; V2 JSON and binary infer."""
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    out: dict[str, Any] = {
        "v1_live": await v1.is_server_live(url),
        "v1_model_ready": await v1.is_model_ready(url, "diabetes"),
        "v1_predict": await v1.infer(url, {"instances": ROWS}, model_name="diabetes"),
        "v2_ready": await v2.is_server_ready(url),
        "v2_model_ready": await v2.is_model_ready(url, "diabetes"),
    }
    for binary in (False, True):
        x = InferInput("input-0", [2, 3], "FP64")
        x.set_data_from_numpy(np.array(ROWS, dtype=np.float64), binary_data=binary)
        result = await v2.infer(
            url, InferRequest(model_name="diabetes", infer_inputs=[x]), model_name="diabetes"
        )
        out[f"v2_{'binary' if binary else 'json'}"] = {
            o.name: _labels(o.as_numpy()) for o in result.outputs
        }
    try:
        await v1.infer(url, {"instances": [[1, 3]]}, model_name="diabetes")
        out["v1_error"] = None
    except Exception as exc:  # the client raises httpx.HTTPStatusError with the message
        out["v1_error"] = str(exc)
    await v1.close()
    await v2.close()
    return out


def run_records(url: str, model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Triton's and KServe's clients on any model: one tensor per input the model's metadata
    lists (BYTES for string features), built from ``records``; each client's answers."""
    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    metadata = client.get_model_metadata(model)
    version = metadata["versions"][-1]
    triton_inputs, kserve_inputs = [], []
    for spec in metadata["inputs"]:
        column = [r[spec["name"]] for r in records]
        dtype = np.object_ if spec["datatype"] == "BYTES" else np.float64
        values = np.array(column, dtype=dtype)
        t = triton.InferInput(spec["name"], [len(records)], spec["datatype"])
        t.set_data_from_numpy(values, binary_data=True)
        triton_inputs.append(t)
        k = InferInput(spec["name"], [len(records)], spec["datatype"])
        k.set_data_from_numpy(values, binary_data=False)
        kserve_inputs.append(k)
    result = client.infer(model, triton_inputs, model_version=version)
    out: dict[str, Any] = {
        "metadata": metadata,
        "triton": {o["name"]: _labels(result.as_numpy(o["name"])) for o in metadata["outputs"]},
    }
    client.close()

    async def kserve() -> dict[str, Any]:
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        answer = await v2.infer(
            url, InferRequest(model_name=model, infer_inputs=kserve_inputs), model_name=model
        )
        await v2.close()
        return {o.name: _labels(o.as_numpy()) for o in answer.outputs}

    out["kserve"] = asyncio.run(kserve())
    return out


def main() -> None:
    url = sys.argv[1].rstrip("/")
    if len(sys.argv) == 4:  # URL MODEL RECORDS_JSON
        print(json.dumps(run_records(url, sys.argv[2], json.loads(sys.argv[3]))))
        return
    print(json.dumps({"triton": run_triton(url), "kserve": asyncio.run(run_kserve(url))}))


if __name__ == "__main__":
    main()
