"""Small builders shared by the OpenAPI documents of every protocol (docs, docs_kserve)."""

from __future__ import annotations

from typing import Any, Final

#: What each documented refusal status means, on every route that can answer it.
ERROR_TEXTS: Final = {
    400: "Malformed body (invalid JSON or CSV, or a shape no route accepts)",
    404: "Unknown model (or version)",
    413: "Too many rows or body too large",
    415: "Unsupported Content-Type",
    422: "Invalid input: missing/unknown feature, non-numeric, non-finite, out of range, "
    "wrong width, empty batch",
    503: "Model failed verification (server not ready)",
}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response (or body) of ``schema`` as ``application/json``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(schema: str, *statuses: int) -> dict[str, Any]:
    """The documented refusals ``statuses``, each with the error body ``schema``."""
    return {str(s): json_content(ref(schema), ERROR_TEXTS[s]) for s in statuses}
