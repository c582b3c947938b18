"""bench.wrk: the command it runs, and what it reads back from request.lua's result line."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bench import wrk

RAW = {
    "requests": 12_000,
    "duration_us": 4_000_000,
    "bytes": 1_000_000,
    "connect_errors": 1,
    "read_errors": 2,
    "write_errors": 3,
    "status_errors": 7,
    "timeouts": 4,
    "latency_mean_us": 810.5,
    "latency_p50_us": 750,
    "latency_p90_us": 1200,
    "latency_p99_us": 2500,
    "latency_max_us": 9000,
}


def output(raw: dict[str, object]) -> str:
    """What wrk prints: its own report, then request.lua's line."""
    return (
        "Running 4s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n"
        f"BENCH_RESULT {json.dumps(raw)}\nRequests/sec: 3000.00\n"
    )


def test_the_result_line_is_found_among_wrks_own_report() -> None:
    r = wrk.parse(output(RAW))
    assert r.raw == RAW
    assert r.requests == 12_000
    assert r.seconds == 4.0


def test_rate_is_requests_over_the_measured_duration_and_latencies_are_in_ms() -> None:
    r = wrk.parse(output(RAW))
    assert r.rps == 3000.0
    assert (r.p50_ms, r.p99_ms) == (0.75, 2.5)


def test_status_errors_and_socket_errors_are_counted_apart_and_together() -> None:
    r = wrk.parse(output(RAW))
    assert r.status_errors == 7
    assert r.socket_errors == 1 + 2 + 3 + 4
    assert r.errors == 17


def test_a_run_of_no_duration_has_no_rate_rather_than_a_division_error() -> None:
    assert wrk.parse(output({**RAW, "duration_us": 0})).rps == 0.0


def test_output_without_the_result_line_is_an_error_naming_it() -> None:
    with pytest.raises(wrk.WrkError, match="BENCH_RESULT"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_a_result_line_missing_a_figure_is_an_error_naming_the_figure() -> None:
    partial = {k: v for k, v in RAW.items() if k != "latency_p99_us"}
    with pytest.raises(wrk.WrkError, match="latency_p99_us"):
        wrk.parse(output(partial))


def test_the_command_is_one_thread_bounded_in_time_with_the_lua_script_and_the_url_last() -> None:
    req = wrk.Request("http://127.0.0.1:9/x?a=1")
    cmd = wrk.command(req, connections=16, duration=0, timeout="5s", wrk="/opt/wrk")
    assert cmd == [
        "/opt/wrk", "-t1", "-c16", "-d1s", "--timeout", "5s", "-s", str(wrk.LUA),
        "http://127.0.0.1:9/x?a=1",
    ]  # fmt: skip
    assert wrk.LUA.is_file()


def test_the_command_is_pinned_with_taskset_when_cpus_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bench.procs.shutil.which", lambda name: f"/usr/bin/{name}")
    cmd = wrk.command(wrk.Request("http://h/"), connections=1, duration=3, cpus="1")
    assert cmd[:4] == ["taskset", "-c", "1", "wrk"]
    assert "-d3s" in cmd


def test_the_request_reaches_lua_through_the_environment(tmp_path: Path) -> None:
    assert wrk.Request("http://h/").env() == {
        "BENCH_METHOD": "GET",
        "BENCH_CONTENT_TYPE": "application/json",
    }
    body = tmp_path / "body"
    env = wrk.Request("http://h/", "POST", body, "text/csv").env()
    assert env == {
        "BENCH_METHOD": "POST",
        "BENCH_CONTENT_TYPE": "text/csv",
        "BENCH_BODY_FILE": str(body),
    }


def fake_wrk(tmp_path: Path, script: str) -> str:
    path = tmp_path / "wrk"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_run_executes_wrk_with_the_request_environment_and_parses_its_output(
    tmp_path: Path,
) -> None:
    raw = {**RAW, "requests": 5}
    seen = tmp_path / "seen"
    exe = fake_wrk(
        tmp_path,
        f'echo "$BENCH_METHOD $BENCH_BODY_FILE $*" > {seen}\n'
        f"echo 'BENCH_RESULT {json.dumps(raw)}'\n",
    )
    body = tmp_path / "body.json"
    req = wrk.Request("http://127.0.0.1:9/p", "POST", body)
    r = wrk.run(req, connections=2, duration=1, wrk=exe)
    assert r.requests == 5
    assert seen.read_text().split() == [
        "POST", str(body), "-t1", "-c2", "-d1s", "--timeout", "10s", "-s", str(wrk.LUA),
        "http://127.0.0.1:9/p",
    ]  # fmt: skip


def test_a_failing_wrk_is_an_error_with_what_it_said(tmp_path: Path) -> None:
    exe = fake_wrk(tmp_path, "echo 'unknown option --x' >&2\nexit 1\n")
    with pytest.raises(wrk.WrkError, match=r"wrk failed \(1\): unknown option --x"):
        wrk.run(wrk.Request("http://127.0.0.1:9/"), connections=1, duration=1, wrk=exe)
