"""bench.scaling's settings and its Prometheus reading, against a tiny real HTTP server; and
bench.peers' targets. (The analysis of recorded runs is tested in tests/loadgen/.)"""

from __future__ import annotations

import pytest

from bench import peers, scaling
from bench.prom import Prometheus
from tests.unit.bench_http import serve


def test_the_project_runs_on_its_own_ports_with_capped_replicas() -> None:
    s = scaling.Settings(replicas=(1, 2), model_cpus="0.5", lb_port="38180")
    env = s.compose_settings(2)
    assert env["COMPOSE_PROJECT_NAME"] == "modelfleet-scaling"
    assert (env["REPLICAS"], env["MODEL_CPUS"], env["LB_PORT"]) == ("2", "0.5", "38180")
    assert env["LOCUST_PORT"] == "38189"
    assert env["PROMETHEUS_SCRAPE_INTERVAL"] == "2s"
    assert s.project_for(3).settings["REPLICAS"] == "3"
    assert s.project_for(3).name == "modelfleet-scaling"
    assert s.lb_url == "http://127.0.0.1:38180"


def vector(values: dict[str, str]) -> tuple[int, dict]:
    result = [{"metric": {"replica": k}, "value": [0, v]} for k, v in values.items()]
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_each_replica_gets_its_share_of_requests_and_its_cpu() -> None:
    # The same canned vector answers both queries (requests, then CPU).
    with serve({"/api/v1/query": vector({"b": "300", "a": "100"})}) as (url, seen):
        rows = scaling.per_replica(Prometheus(url), "20s", 1700000000.0)
    assert rows == [
        {"replica": "a", "requests": 100, "share": 0.25, "cpu_cores": 100.0},
        {"replica": "b", "requests": 300, "share": 0.75, "cpu_cores": 300.0},
    ]
    exprs = [q["query"][0] for q in (r["query"] for r in seen)]
    assert "increase(modelfleet_requests_total" in exprs[0] and "[20s]" in exprs[0]
    assert "rate(modelfleet_container_cpu_seconds_total" in exprs[1]
    assert all(r["query"]["time"] == ["1700000000.000"] for r in seen)


def test_server_latency_is_in_ms_and_none_without_data() -> None:
    with serve({"/api/v1/query": vector({"x": "0.0123"})}) as (url, seen):
        assert scaling.server_latency(Prometheus(url), "5s", 1.0) == {
            "p50_ms": 12.3,
            "p99_ms": 12.3,
        }
    assert "histogram_quantile(0.5," in seen[0]["query"]["query"][0]
    assert "histogram_quantile(0.99," in seen[1]["query"]["query"][0]
    with serve({"/api/v1/query": vector({})}) as (url, _):
        assert scaling.server_latency(Prometheus(url), "5s", 1.0) == {
            "p50_ms": None,
            "p99_ms": None,
        }


@pytest.mark.parametrize("with_stack", [True, False])
def test_peers_send_the_same_record_each_in_its_own_protocol(
    monkeypatch: pytest.MonkeyPatch, with_stack: bool
) -> None:
    monkeypatch.setattr(peers, "WITH_STACK", with_stack)
    row = {"f1": 6, "f2": 148}
    ts = {t.name: t for t in peers.targets(row)}
    assert list(ts) == ["modelfleet-1", "bentoml", "mlflow"] + (["stack"] if with_stack else [])
    assert ts["modelfleet-1"].body == ts["bentoml"].body == row
    assert ts["mlflow"].body == {"dataframe_records": [row]}
    assert ts["modelfleet-1"].path == "/models/diabetes/predict"
    assert len({t.url for t in ts.values()}) == len(ts)  # every server on its own port
