"""A fixed set of requests on every route, and their responses as data.

``tests/unit/test_recorded_responses.py`` replays these requests against the app and compares
every answer (status, the headers that matter, body) with ``recorded_responses.json``, which
was recorded before the request pipeline was restructured (issue #9): a refactoring that
changes any answer fails there. Re-record only for a deliberate change of behaviour::

    RECORD_RESPONSES=1 .venv/bin/python -m pytest tests/unit/test_recorded_responses.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any, Final

from flask import Flask
from model_server.api.common import EXTENSION_KEY

RECORDING: Final = "recorded_responses.json"
#: Headers compared; everything else (Date, Server) is the WSGI server's or the test client's.
HEADERS: Final = (
    "Content-Type",
    "Content-Length",
    "Allow",
    "X-Served-By",
    "X-Request-ID",
    "X-Model-Version",
)
#: Bodies longer than this are recorded by their sha256 (the OpenAPI documents, /docs).
MAX_RECORDED_BODY: Final = 4096

#: Series whose changes are recorded per request (durations vary, counts must not).
COUNTED: Final = frozenset(
    {
        "modelfleet_requests_total",
        "modelfleet_errors_total",
        "modelfleet_predictions_total",
        "modelfleet_prediction_rows_count",
        "modelfleet_prediction_rows_sum",
        "modelfleet_request_duration_seconds_count",
        "modelfleet_requests_in_flight",
        "modelfleet_busy_workers",
    }
)
Q: Final = "pregnant=1&glucose=3&pressure=1"
BOSTON_Q: Final = "crim=0.01&zn=18&indus=2.3&chas=0&nox=0.5&rm=6&age=65&dis=4&rad=1&tax=242"
GBT_Q: Final = "pregnant=1&glucose=90&pressure=70&triceps=20&insulin=80&mass=30&pedigree=0.5&age=30"
JSON: Final = {"Content-Type": "application/json"}
CSV: Final = {"Content-Type": "text/csv"}


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _binary_infer() -> tuple[bytes, dict[str, str]]:
    """An OIP v2 binary-extension request: one FP32 tensor of two rows."""
    data = struct.pack("<6f", 1, 90, 70, 6, 150, 80)
    header = _json(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    )
    return header + data, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def cases() -> list[dict[str, Any]]:
    """Every recorded request: name, method, path (with query), headers and body."""
    rows = [[1, 90, 70], [6, 150, 80]]
    records = [dict(zip(("pregnant", "glucose", "pressure"), r, strict=True)) for r in rows]
    binary_body, binary_headers = _binary_infer()
    out: list[tuple[str, str, str, dict[str, str], bytes]] = [
        # plumber
        ("plumber", "GET", f"/predict_data?{Q}", {}, b""),
        ("plumber reordered", "GET", "/predict_data?pressure=1&pregnant=1&glucose=3", {}, b""),
        ("plumber escaped", "GET", "/predict_data?pregnant=1&glucose=%33&pressure=1", {}, b""),
        ("plumber plus", "GET", "/predict_data?pregnant=+1&glucose=3&pressure=1", {}, b""),
        ("plumber repeated", "GET", f"/predict_data?{Q}&glucose=4", {}, b""),
        ("plumber missing", "GET", "/predict_data?pregnant=1&glucose=3", {}, b""),
        ("plumber unknown", "GET", f"/predict_data?{Q}&color=red", {}, b""),
        ("plumber nan", "GET", "/predict_data?pregnant=1&glucose=nan&pressure=1", {}, b""),
        ("plumber text", "GET", "/predict_data?pregnant=1&glucose=abc&pressure=1", {}, b""),
        ("plumber range", "GET", "/predict_data?pregnant=1&glucose=3e9&pressure=1", {}, b""),
        ("plumber empty", "GET", "/predict_data", {}, b""),
        ("plumber non-ascii", "GET", "/predict_data?pregnant=1&glucose=%C3%A9&pressure=1", {}, b""),
        ("plumber head", "HEAD", f"/predict_data?{Q}", {}, b""),
        ("plumber post", "POST", f"/predict_data?{Q}", {}, b""),
        ("plumber options", "OPTIONS", "/predict_data", {}, b""),
        ("plumber named", "GET", f"/models/diabetes-gbt/predict_data?{Q}", {}, b""),
        ("plumber gbt", "GET", f"/models/diabetes-gbt/predict_data?{GBT_Q}", {}, b""),
        ("plumber boston", "GET", f"/models/boston/predict_data?{BOSTON_Q}", {}, b""),
        ("plumber no model", "GET", f"/models/nope/predict_data?{Q}", {}, b""),
        ("plumber trailing slash", "GET", f"/predict_data/?{Q}", {}, b""),
        # own JSON API
        ("models", "GET", "/models", {}, b""),
        ("manifest", "GET", "/models/diabetes", {}, b""),
        ("manifest unknown", "GET", "/models/nope", {}, b""),
        ("predict record", "POST", "/models/diabetes/predict", JSON, _json(records[0])),
        ("predict records", "POST", "/models/diabetes/predict", JSON, _json(records)),
        ("predict rows", "POST", "/models/diabetes/predict", JSON, _json(rows)),
        ("predict instances", "POST", "/models/diabetes/predict", JSON, _json({"instances": rows})),
        (
            "predict columns",
            "POST",
            "/models/diabetes/predict",
            JSON,
            _json({"inputs": {"pregnant": [1, 6], "glucose": [90, 150], "pressure": [70, 80]}}),
        ),
        (
            "predict json charset",
            "POST",
            "/models/diabetes/predict",
            {"Content-Type": "application/json; charset=utf-8"},
            _json(rows),
        ),
        (
            "predict boston",
            "POST",
            "/models/boston/predict",
            JSON,
            _json([[0.01, 18, 2.3, 0, 0.5, 6, 65, 4, 1, 242]]),
        ),
        ("predict gbt", "POST", "/models/diabetes-gbt/predict", JSON, _json(records)),
        (
            "predict csv header",
            "POST",
            "/models/diabetes/predict",
            CSV,
            b"pregnant,glucose,pressure\n1,90,70\n6,150,80\n",
        ),
        ("predict csv rows", "POST", "/models/diabetes/predict", CSV, b"1,90,70\n6,150,80\n"),
        ("predict csv bad", "POST", "/models/diabetes/predict", CSV, b"1,90\n"),
        ("predict malformed", "POST", "/models/diabetes/predict", JSON, b"{not json"),
        ("predict empty body", "POST", "/models/diabetes/predict", JSON, b""),
        ("predict empty list", "POST", "/models/diabetes/predict", JSON, b"[]"),
        ("predict no type", "POST", "/models/diabetes/predict", {}, _json(rows)),
        ("predict xml", "POST", "/models/diabetes/predict", {"Content-Type": "text/xml"}, b"<a/>"),
        (
            "predict wrong field",
            "POST",
            "/models/diabetes/predict",
            JSON,
            _json({"pregnant": 1, "glucose": "x", "pressure": 1}),
        ),
        (
            "predict too large",
            "POST",
            "/models/diabetes/predict",
            JSON,
            b"[" + b" " * 4_200_000 + b"]",
        ),
        (
            "predict too many rows",
            "POST",
            "/models/diabetes/predict",
            JSON,
            _json([[1, 2, 3]] * 10_001),
        ),
        ("predict get", "GET", "/models/diabetes/predict", {}, b""),
        ("predict no model", "POST", "/models/nope/predict", JSON, _json(rows)),
        # health
        (
            "predict gbt rows",
            "POST",
            "/models/diabetes-gbt/predict",
            JSON,
            _json([[1, 90, 70, 20, 80, 30, 0.5, 30], [6, 150, 80, 30, 0, 35, 1.2, 50]]),
        ),
        ("healthz", "GET", "/healthz", {}, b""),
        ("readyz", "GET", "/readyz", {}, b""),
        ("metrics", "GET", "/metrics", {}, b""),
        # SageMaker and MLflow
        ("ping", "GET", "/ping", {}, b""),
        ("invocations json", "POST", "/invocations", JSON, _json(rows)),
        (
            "invocations split",
            "POST",
            "/invocations",
            JSON,
            _json(
                {"dataframe_split": {"columns": ["pregnant", "glucose", "pressure"], "data": rows}}
            ),
        ),
        ("invocations csv", "POST", "/invocations", CSV, b"1,90,70\n6,150,80\n"),
        (
            "invocations accept csv",
            "POST",
            "/invocations",
            {**JSON, "Accept": "text/csv"},
            _json(rows),
        ),
        (
            "invocations target",
            "POST",
            "/invocations",
            {**JSON, "X-Amzn-SageMaker-Target-Model": "boston"},
            _json([[0.01, 18, 2.3, 0, 0.5, 6, 65, 4, 1, 242]]),
        ),
        (
            "invocations no target",
            "POST",
            "/invocations",
            {**JSON, "X-Amzn-SageMaker-Target-Model": "nope"},
            _json(rows),
        ),
        ("invocations get", "GET", "/invocations", {}, b""),
        ("mlflow health", "GET", "/health", {}, b""),
        ("mlflow version", "GET", "/version", {}, b""),
        # KServe V1
        ("v1 alive", "GET", "/", {}, b""),
        ("v1 models", "GET", "/v1/models", {}, b""),
        ("v1 model", "GET", "/v1/models/diabetes", {}, b""),
        ("v1 model unknown", "GET", "/v1/models/nope", {}, b""),
        ("v1 predict", "POST", "/v1/models/diabetes:predict", JSON, _json({"instances": rows})),
        (
            "v1 predict no type",
            "POST",
            "/v1/models/diabetes:predict",
            {},
            _json({"instances": records}),
        ),
        ("v1 predict bad", "POST", "/v1/models/diabetes:predict", JSON, _json({"rows": rows})),
        ("v1 predict malformed", "POST", "/v1/models/diabetes:predict", JSON, b"{"),
        # Open Inference Protocol v2
        ("v2 server", "GET", "/v2", {}, b""),
        ("v2 live", "GET", "/v2/health/live", {}, b""),
        ("v2 ready", "GET", "/v2/health/ready", {}, b""),
        ("v2 metadata", "GET", "/v2/models/diabetes", {}, b""),
        ("v2 metadata version", "GET", "/v2/models/diabetes/versions/1.0.0", {}, b""),
        ("v2 metadata bad version", "GET", "/v2/models/diabetes/versions/9", {}, b""),
        ("v2 model ready", "GET", "/v2/models/boston/ready", {}, b""),
        (
            "v2 infer",
            "POST",
            "/v2/models/diabetes/infer",
            JSON,
            _json({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": rows}]}),
        ),
        (
            "v2 infer per feature",
            "POST",
            "/v2/models/diabetes/versions/1.0.0/infer",
            {},
            _json(
                {
                    "id": "r1",
                    "inputs": [
                        {"name": f, "shape": [2], "datatype": "INT32", "data": [r[i] for r in rows]}
                        for i, f in enumerate(("pregnant", "glucose", "pressure"))
                    ],
                }
            ),
        ),
        (
            "v2 infer outputs",
            "POST",
            "/v2/models/diabetes/infer",
            JSON,
            _json(
                {
                    "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": rows}],
                    "outputs": [{"name": "probability"}],
                }
            ),
        ),
        ("v2 infer binary", "POST", "/v2/models/diabetes/infer", binary_headers, binary_body),
        (
            "v2 infer bad shape",
            "POST",
            "/v2/models/diabetes/infer",
            JSON,
            _json({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": rows}]}),
        ),
        ("v2 infer no model", "POST", "/v2/models/nope/infer", JSON, _json({"inputs": []})),
        # documents and unknown routes
        ("openapi", "GET", "/openapi.json", {}, b""),
        ("openapi internal", "GET", "/openapi.internal.json", {}, b""),
        ("docs", "GET", "/docs", {}, b""),
        ("no route", "GET", "/nothing/here", {}, b""),
        ("no route post", "POST", "/nothing", JSON, b"{}"),
    ]
    return [{"name": n, "method": m, "path": p, "headers": h, "body": b} for n, m, p, h, b in out]


def _body(data: bytes, content_type: str) -> Any:
    if len(data) > MAX_RECORDED_BODY:
        return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
    if data and content_type.startswith("application/json"):
        return json.loads(data)
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _counters(app: Flask) -> dict[str, float]:
    """The request, error and prediction counters and the in-flight gauge, by series."""
    registry = app.extensions[EXTENSION_KEY].metrics.registry
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name in COUNTED:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
    return out


def replay(app: Flask) -> dict[str, dict[str, Any]]:
    """Send every case through ``app``'s test client; the answers keyed by case name.

    Each request carries ``X-Request-ID: rec-<n>`` so the echoed id is deterministic; the
    ``/metrics`` body changes with every request and is recorded by its content type only.
    Each answer also holds the change of every counter the request made (``metrics``).
    """
    client = app.test_client()
    answers: dict[str, dict[str, Any]] = {}
    for n, case in enumerate(cases()):
        before = _counters(app)
        path, _, query = case["path"].partition("?")
        response = client.open(
            path,
            method=case["method"],
            query_string=query,
            headers={**case["headers"], "X-Request-ID": f"rec-{n}"},
            data=case["body"],
        )
        content_type = response.headers.get("Content-Type", "")
        headers = {h: response.headers[h] for h in HEADERS if h in response.headers}
        if "Allow" in headers:  # werkzeug's automatic OPTIONS answer lists a set: any order
            headers["Allow"] = ", ".join(sorted(headers["Allow"].split(", ")))
        body = _body(response.get_data(), content_type)
        if case["path"] == "/metrics":
            headers.pop("Content-Length", None)
            body = None
        after = _counters(app)
        changed = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
        answers[case["name"]] = {
            "status": response.status_code,
            "headers": headers,
            "body": body,
            "metrics": changed,
        }
    return answers
