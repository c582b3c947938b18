"""Per-model OpenAPI operations of the KServe protocols: Open Inference Protocol v2, KServe V1.

Both protocols fix their error body as ``{"error": "<string>"}`` (``MessageError``); the
per-model request bodies are ``openapi_models.model_schemas``' ``InferRequest_*`` and
``V1Request_*``. The operations that do not depend on a model are data
(``openapi_paths_kserve.json``).
"""

from __future__ import annotations

from typing import Any

from model_server.api.openapi_models import body_examples, component, errors, json_content, ref
from model_server.core.registry import LoadedModel

TAG_V2 = "oip-v2"
TAG_V1 = "kserve-v1"


def kserve_model_paths(model: LoadedModel, key: str, versioned: bool) -> dict[str, Any]:
    """The OIP v2 inference and KServe V1 prediction operations of ``model``: for its
    current version, or (``versioned``) the OIP v2 inference on its version's own path."""
    name, version = model.name, model.bundle.version
    examples = body_examples(model)
    infer = {
        "summary": f"OIP v2 inference on {name} version {version} (typed tensors)"
        if versioned
        else f"OIP v2 inference on {name} (typed tensors)",
        "description": "JSON tensors. Also accepted, not expressible here: no "
        "Content-Type (read as JSON), and Triton's binary tensor data extension "
        "(Inference-Header-Content-Length; binary_data_size per input; "
        "binary_data_output or outputs[].parameters.binary_data ask for binary outputs, "
        "answered as application/octet-stream with the same header).",
        "tags": [TAG_V2],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": ref(component("InferRequest", key)),
                    "example": examples["InferRequest"],
                }
            },
        },
        "responses": {
            "200": {
                "description": "Inference result",
                "content": {
                    "application/json": {"schema": ref("InferResponse")},
                    "application/octet-stream": {"schema": {"type": "string"}},
                },
            },
            **errors("MessageError", 400, 404, 413, 415, 422),
        },
    }
    if versioned:
        return {f"/v2/models/{name}/versions/{version}/infer": {"post": infer}}
    return {
        f"/v2/models/{name}/infer": {"post": infer},
        f"/v1/models/{name}:predict": {
            "post": {
                "summary": f"KServe V1 prediction on {name}",
                "tags": [TAG_V1],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": ref(component("V1Request", key)),
                            "example": examples["V1Request"],
                        }
                    },
                },
                "responses": {
                    "200": json_content(ref("V1Predictions"), "Predictions"),
                    **errors("MessageError", 400, 413, 415, 422),
                },
            }
        },
    }
