"""The OpenAPI document covers every route; settings come from MODELFLEET_* variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_documents_every_route_and_method(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.internal.json").get_json()
    assert spec["openapi"].startswith("3.")
    # Model-specific operations (/models/diabetes/predict, /v1/models/diabetes:predict, ...)
    # document their route's template.
    models = "|".join(re.escape(m) for m in app.extensions["modelfleet"].registry.models)
    versions = "|".join(
        re.escape(v)
        for loaded in app.extensions["modelfleet"].registry.versions.values()
        for v in loaded
    )
    documented = {
        (
            re.sub(
                rf"/versions/(?:{versions})(?=/)",
                "/versions/{version}",
                re.sub(rf"/models/(?:{models})(?=[/:])", "/models/{name}", path),
            ),
            method,
        )
        for path, ops in spec["paths"].items()
        for method in ops
    }
    served = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served


@pytest.mark.parametrize("path", ["/openapi.json", "/openapi.internal.json"])
def test_openapi_refs_resolve(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    spec = response.get_json()
    refs = set(re.findall(r'"\$ref":\s*"#/components/(\w+)/(\w+)"', response.data.decode()))
    assert refs
    assert all(name in spec["components"][kind] for kind, name in refs)
    # Links name their target operation by a JSON pointer into the paths.
    pointers = re.findall(r'"operationRef":\s*"#/paths/([^"]+)"', response.data.decode())
    assert pointers
    for pointer in pointers:
        path_key, method = pointer.rsplit("/", 1)
        assert method in spec["paths"][path_key.replace("~1", "/").replace("~0", "~")]


def test_public_openapi_is_the_internal_one_without_what_the_lb_blocks(
    client: FlaskClient,
) -> None:
    public = client.get("/openapi.json").get_json()
    internal = client.get("/openapi.internal.json").get_json()
    hidden = set(internal["paths"]) - set(public["paths"])
    assert {k: v for k, v in internal.items() if k != "paths"} == {
        k: v for k, v in public.items() if k != "paths"
    }
    assert all(internal["paths"][p] == ops for p, ops in public["paths"].items())
    # Exactly the paths the load balancer answers 404 (nginx/nginx.conf's blocked location).
    conf = (ROOT / "nginx" / "nginx.conf").read_text()
    blocked = re.search(r"location ~ \^/\(([^)]*)\)\(/\|\$\) \{\s*return 404;", conf)
    assert blocked
    assert hidden == {"/" + name.replace("\\.", ".") for name in blocked.group(1).split("|")}
    assert client.get("/openapi.internal.json").status_code == 200


def test_docs_page_is_self_contained_html(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.mimetype == "text/html"
    page = response.data.decode()
    assert "/v2/models/{name}/infer" in page
    assert "http://" not in page and "https://" not in page  # no CDN assets


def test_settings_defaults() -> None:
    s = Settings.from_env({})
    assert s.model_dir == Path("/opt/modelfleet/models")
    assert (s.default_model, s.max_rows, s.max_body_bytes) == ("diabetes", 10_000, 4 * 1024 * 1024)
    assert (s.port, s.workers, s.threads, s.log_level) == (8080, 2, 4, "INFO")
    assert s.replica_id
    assert s.prometheus_multiproc_dir is None


def test_settings_from_environment() -> None:
    s = Settings.from_env(
        {
            "MODELFLEET_MODEL_DIR": "/models",
            "MODELFLEET_MAX_ROWS": "7",
            "MODELFLEET_REPLICA_ID": "r1",
            "MODELFLEET_LOG_LEVEL": "debug",
            "MODELFLEET_ACCESS_LOG": "true",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/p",
        }
    )
    assert (s.model_dir, s.max_rows, s.replica_id) == (Path("/models"), 7, "r1")
    assert (s.log_level, s.access_log, s.prometheus_multiproc_dir) == ("DEBUG", True, "/tmp/p")


@pytest.mark.parametrize(
    "env",
    [
        {"MODELFLEET_MAX_ROWS": "many"},
        {"MODELFLEET_WORKERS": "0"},
        {"MODELFLEET_LOG_LEVEL": "x"},
        {"MODELFLEET_MAX_REQUESTS": "-1"},
    ],
)
def test_invalid_settings_fail_at_start_naming_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="MODELFLEET_"):
        Settings.from_env(env)


def test_a_field_type_without_a_converter_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class WithFloat(Settings):
        ratio: float = 0.5

    with pytest.raises(TypeError, match="MODELFLEET_RATIO"):
        WithFloat.from_env({"MODELFLEET_RATIO": "0.7"})


def test_every_settings_field_type_converts() -> None:
    converted = Settings.from_env(
        {
            "MODELFLEET_WORKERS": "3",
            "MODELFLEET_ACCESS_LOG": "yes",
            "MODELFLEET_MODEL_DIR": "/models",
            "MODELFLEET_LOG_LEVEL": " debug ",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/m",
        }
    )
    assert converted.workers == 3
    assert converted.access_log is True
    assert converted.model_dir == Path("/models")
    assert converted.log_level == "DEBUG"
    assert converted.prometheus_multiproc_dir == "/tmp/m"


def test_workers_are_recycled_by_default_and_recycling_can_be_switched_off() -> None:
    default = Settings.from_env({})
    assert default.max_requests > 0 and 0 < default.max_requests_jitter < default.max_requests
    off = Settings.from_env({"MODELFLEET_MAX_REQUESTS": "0"})
    assert off.max_requests == 0
