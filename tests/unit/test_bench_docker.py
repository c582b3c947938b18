"""bench.docker: the engine's API read over a unix socket (a fake engine here), and the CPU
sampler's arithmetic."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from bench import docker

CONTAINERS = [
    {"Id": "aaa", "Labels": {"com.docker.compose.service": "model"}},
    {"Id": "bbb", "Labels": {"com.docker.compose.service": "lb"}},
    {"Id": "ccc", "Labels": {}},
]
STATS = {
    "aaa": {
        "cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000}},
        "memory_stats": {
            "usage": 300 * 2**20,
            "stats": {"inactive_file": 100 * 2**20, "total_rss": 120 * 2**20, "rss": 1},
        },
    },
    "bbb": {"memory_stats": {"usage": 50 * 2**20, "stats": {"total_inactive_file": 0, "anon": 7}}},
}


class Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[docker.DockerEngine]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            seen.append(unquote(self.path))
            if url.path == "/containers/json":
                body: object = CONTAINERS
            else:
                body = STATS.get(url.path.split("/")[2], {})
                assert parse_qs(url.query) == {"stream": ["false"], "one-shot": ["true"]}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args: object) -> None:
            pass

    sock = tmp_path / "docker.sock"
    server = Engine(str(sock), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # No container's cgroup is visible: CPU comes from the engine's stats.
    monkeypatch.setattr(docker.cpu, "CGROUP", tmp_path / "no-cgroups")
    monkeypatch.setattr(docker.cpu, "container_seconds", lambda cid: None)
    e = docker.DockerEngine(str(sock))
    e.seen = seen  # type: ignore[attr-defined]
    yield e
    server.shutdown()
    server.server_close()


def test_a_projects_containers_are_found_by_its_compose_label(
    engine: docker.DockerEngine,
) -> None:
    assert engine.containers("mf-x") == {"aaa": "model", "bbb": "lb", "ccc": "?"}
    query = engine.seen[0]  # type: ignore[attr-defined]
    assert '"label": ["com.docker.compose.project=mf-x"]' in query


def test_cpu_is_the_engines_total_usage_in_seconds_and_none_when_missing(
    engine: docker.DockerEngine,
) -> None:
    assert engine.cpu_seconds("aaa") == 2.5
    assert engine.cpu_seconds("bbb") is None


def test_the_working_set_leaves_out_reclaimable_page_cache(engine: docker.DockerEngine) -> None:
    assert engine.memory_bytes("aaa") == 200 * 2**20
    assert engine.memory_bytes("ccc") is None
    assert engine.working_set_mib("mf-x", ("model", "lb")) == 250.0
    assert engine.working_set_mib("mf-x", ("model", "?")) is None  # ccc unknown: no total


def test_anonymous_memory_is_cgroup_v1s_hierarchical_rss_or_v2s_anon(
    engine: docker.DockerEngine,
) -> None:
    assert engine.anonymous_bytes("aaa") == 120 * 2**20
    assert engine.anonymous_bytes("bbb") == 7
    assert engine.anonymous_bytes("ccc") is None


def test_cpu_is_read_from_the_cgroup_first_when_this_host_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(docker.cpu, "container_seconds", lambda cid: 42.0)
    assert docker.DockerEngine("/nonexistent.sock").cpu_seconds("aaa") == 42.0


class Clock:
    """An engine whose containers use exactly ``rate`` cores each."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        self.now = 0.0

    def cpu_seconds(self, cid: str) -> float | None:
        return self.rates[cid] * self.now if cid in self.rates else None


def test_the_sampler_reports_average_cores_per_service_over_what_it_saw() -> None:
    clock = Clock({"lb1": 0.5, "lb2": 0.25, "gen": 1.0, "late": 0.3})
    sampler = docker.CpuSampler(clock, "p", interval=2.0)  # type: ignore[arg-type]
    for t in (0.0, 2.0, 4.0):
        clock.now = t
        for cid, service in (("lb1", "lb"), ("lb2", "lb"), ("gen", "loadgen"), ("x", "lb")):
            sampler.sample(cid, service, now=t)
    clock.now = 4.0
    sampler.sample("late", "prometheus", now=4.0)  # seen once: no interval, no figure
    assert sampler.cores_by_service() == {"lb": 0.75, "loadgen": 1.0}


def test_the_sampler_thread_samples_only_the_services_asked_for_and_stops() -> None:
    class Engine:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def containers(self, project: str) -> dict[str, str]:
            return {"a": "lb", "b": "model"}

        def cpu_seconds(self, cid: str) -> float:
            self.calls.append(cid)
            return 1.0

    e = Engine()
    sampler = docker.CpuSampler(e, "p", services=("lb",), interval=0.01)  # type: ignore[arg-type]
    sampler.start()
    deadline = time.monotonic() + 10
    while not e.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert not sampler.is_alive()
    assert set(e.calls) == {"a"}
