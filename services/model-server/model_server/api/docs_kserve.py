"""OpenAPI paths of the KServe protocols: Open Inference Protocol v2 and KServe V1.

Both protocols fix their error body as ``{"error": "<string>"}`` (``MessageError``); the
per-model request bodies reuse the exact schemas of ``docs.model_schemas``.
"""

from __future__ import annotations

from typing import Any

from model_server.api.openapi_parts import errors, json_content, ref
from model_server.core.registry import ModelRegistry

TAG_V2 = "oip-v2"
TAG_V1 = "kserve-v1"

MESSAGE_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "<code>: <message>"}},
}


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props}


def _get(summary: str, tag: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "tags": [tag], "responses": responses, **extra}}


def _path_param(name: str, values: list[str], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "enum": values},
    }


def kserve_schemas() -> dict[str, Any]:
    """Component schemas shared by the KServe protocols' operations."""
    return {
        "MessageError": MESSAGE_ERROR,
        "V1Predictions": {
            "type": "object",
            "required": ["predictions"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                }
            },
        },
    }


def kserve_paths(registry: ModelRegistry, component: Any) -> dict[str, Any]:
    """Every OIP v2 and KServe V1 path; ``component(kind, model)`` names per-model schemas."""
    names = sorted(registry.models) or [registry.default_model]
    name_param = _path_param("name", names, "Model name")
    boolean = {"type": "boolean"}
    ready = {"200": json_content(_obj(name={"type": "string"}, ready=boolean), "Ready")}
    paths: dict[str, Any] = {
        "/": _get(
            "Liveness, as KServe's servers answer it (KServe V1 client)",
            TAG_V1,
            {"200": json_content(_obj(status={"const": "alive"}), "Alive")},
        ),
        "/v1/models": _get(
            "KServe V1: names of the loaded models",
            TAG_V1,
            {
                "200": json_content(
                    _obj(models={"type": "array", "items": {"type": "string"}}), "OK"
                )
            },
        ),
        "/v1/models/{name}": _get(
            "KServe V1 model readiness",
            TAG_V1,
            {**ready, **errors("MessageError", 404, 503)},
            parameters=[name_param],
        ),
        "/v2": _get(
            "OIP v2 server metadata",
            TAG_V2,
            {"200": json_content({"type": "object", "required": ["name", "version"]}, "OK")},
        ),
        "/v2/health/live": _get(
            "OIP v2 liveness", TAG_V2, {"200": json_content(_obj(live=boolean), "OK")}
        ),
        "/v2/health/ready": _get(
            "OIP v2 readiness",
            TAG_V2,
            {
                s: json_content(_obj(ready=boolean), d)
                for s, d in (("200", "Ready"), ("503", "Not ready"))
            },
        ),
    }
    versions = sorted({m.bundle.version for m in registry.models.values()}) or ["0"]
    version_param = _path_param("version", versions, "A loaded version of the model")
    metadata = {"200": json_content(ref("ModelMetadata"), "OK"), **errors("MessageError", 404, 503)}
    for prefix, params in (
        ("/v2/models/{name}", [name_param]),
        ("/v2/models/{name}/versions/{version}", [name_param, version_param]),
    ):
        paths[prefix] = _get(
            "OIP v2 model metadata (tensor specs)", TAG_V2, metadata, parameters=params
        )
        paths[f"{prefix}/ready"] = _get(
            "OIP v2 model readiness",
            TAG_V2,
            {**ready, **errors("MessageError", 404, 503)},
            parameters=params,
        )
    # Templates for names that are not loaded models (each loaded model has its own
    # operations below, whose bodies depend on its features): they answer 404.
    unknown_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "Not a loaded model (each model has its own operations)",
        "schema": {"type": "string", "not": {"enum": names}, "pattern": "^[^:]*$"},
    }
    unknown = {
        "parameters": [unknown_param],
        "responses": errors("MessageError", 400, 404, 413, 415, 422),
    }
    paths["/v1/models/{name}:predict"] = {
        "post": {"summary": "Any name that is not a loaded model", "tags": [TAG_V1], **unknown}
    }
    paths["/v2/models/{name}/infer"] = {
        "post": {"summary": "Any name that is not a loaded model", "tags": [TAG_V2], **unknown}
    }
    for name, model in sorted(registry.models.items()):
        version = model.bundle.version
        this_version = _path_param("version", [version], f"The loaded version ({version})")
        infer = {
            "post": {
                "summary": f"OIP v2 inference on {name} (typed tensors)",
                "description": "JSON tensors. Also accepted, not expressible here: no "
                "Content-Type (read as JSON), and Triton's binary tensor data extension "
                "(Inference-Header-Content-Length; binary_data_size per input; "
                "binary_data_output or outputs[].parameters.binary_data ask for binary outputs, "
                "answered as application/octet-stream with the same header).",
                "tags": [TAG_V2],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": ref(component("InferRequest", name))}
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
        }
        paths[f"/v2/models/{name}/infer"] = infer
        versioned = {**infer["post"], "parameters": [this_version]}
        paths[f"/v2/models/{name}/versions/{{version}}/infer"] = {"post": versioned}
        paths[f"/v1/models/{name}:predict"] = {
            "post": {
                "summary": f"KServe V1 prediction on {name}",
                "tags": [TAG_V1],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(component("V1Request", name))}},
                },
                "responses": {
                    "200": json_content(ref("V1Predictions"), "Predictions"),
                    **errors("MessageError", 400, 413, 415, 422),
                },
            }
        }
    return paths
