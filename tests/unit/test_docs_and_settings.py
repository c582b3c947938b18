"""The OpenAPI document covers every route; settings come from MODELFLEET_* variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_server.settings import Settings


def test_openapi_documents_every_route_and_method(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    # Model-specific operations (/models/diabetes/predict, /v1/models/diabetes:predict, ...)
    # document their route's template.
    models = "|".join(re.escape(m) for m in app.extensions["modelfleet"].registry.models)
    documented = {
        (re.sub(rf"/models/(?:{models})(?=[/:])", "/models/{name}", path), method)
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


def test_openapi_refs_resolve(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    refs = set(
        re.findall(
            r'"\$ref":\s*"#/components/schemas/(\w+)"', client.get("/openapi.json").data.decode()
        )
    )
    assert refs <= set(spec["components"]["schemas"])


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
    [{"MODELFLEET_MAX_ROWS": "many"}, {"MODELFLEET_WORKERS": "0"}, {"MODELFLEET_LOG_LEVEL": "x"}],
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
