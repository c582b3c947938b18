"""Prometheus' HTTP API: queries, and their results as numbers."""

from __future__ import annotations

import math
from typing import Any

import requests

from bench import BenchError


class PrometheusError(BenchError):
    """Prometheus answered, but not with ``"status": "success"``."""


def data(body: dict[str, Any]) -> Any:
    """The ``data`` of an API answer; PrometheusError unless its status is success."""
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    return body["data"]


def value(sample: dict[str, Any]) -> float:
    """The number of one instant-vector sample (``"value": [time, "text"]``)."""
    return float(sample["value"][1])


def scalar(result: list[dict[str, Any]]) -> float | None:
    """The first sample's value: None when the result is empty or the value is NaN."""
    if not result:
        return None
    v = value(result[0])
    return None if math.isnan(v) else v


def by_label(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    """Sample values keyed by one of their labels (samples without it are left out)."""
    return {s["metric"][label]: value(s) for s in result if label in s["metric"]}


class Prometheus:
    """One Prometheus server, e.g. ``Prometheus("http://127.0.0.1:9090")``."""

    def __init__(self, base_url: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def api(self, path: str, **params: str) -> Any:
        """GET an API path (``/api/v1/...``) and return its ``data``."""
        r = requests.get(self.base_url + path, params=params, timeout=self.timeout)
        if r.status_code >= 500 or "application/json" not in r.headers.get("Content-Type", ""):
            r.raise_for_status()
        return data(r.json())

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (a vector), at ``at`` (Unix time) or now."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return list(self.api("/api/v1/query", **params)["result"])

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        return scalar(self.query(expr, at))

    def by_label(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        return by_label(self.query(expr, at), label)
