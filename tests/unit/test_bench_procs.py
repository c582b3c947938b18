"""bench.procs: real subprocesses started in their own session, waited for, stopped as a group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from bench import BenchError, procs
from tests.unit.bench_http import serve

# A parent that forks a child, writes the child's pid, and both sleep until killed. The parent
# ignores SIGTERM when asked to, so that stop() must escalate.
FORKING = """
import os, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    time.sleep(600)
    os._exit(0)
open(sys.argv[1], "w").write(str(child))
print("started", flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: its parent (this test) has not reaped it yet.
    status = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return status != "Z"


def forking(tmp_path: Path, mode: str = "polite") -> tuple[procs.Process, Path]:
    pidfile = tmp_path / "child.pid"
    p = procs.Process(
        "forker", [sys.executable, "-c", FORKING, str(pidfile), mode], log=tmp_path / "f.log"
    )
    return p, pidfile


def test_a_process_is_ready_when_its_probe_says_so_and_logs_to_its_file(tmp_path: Path) -> None:
    p, pidfile = forking(tmp_path)
    p.start()
    try:
        p.wait_ready(pidfile.exists, timeout=20, interval=0.05)
        assert p.running()
        assert p.pid is not None and os.getpgid(p.pid) == p.pid  # its own process group
    finally:
        p.stop(timeout=5)
    assert "started" in (tmp_path / "f.log").read_text()


def test_stop_ends_the_process_and_what_it_forked(tmp_path: Path) -> None:
    p, pidfile = forking(tmp_path)
    p.start()
    p.wait_ready(pidfile.exists, timeout=20, interval=0.05)
    time.sleep(0.1)  # the pid is written before the child's pid file is flushed
    child = int(pidfile.read_text())
    assert alive(child)
    code = p.stop(timeout=5)
    assert code is not None and code < 0  # ended by a signal
    assert not p.running()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    p, pidfile = forking(tmp_path, "stubborn")
    p.start()
    p.wait_ready(pidfile.exists, timeout=20, interval=0.05)
    started = time.monotonic()
    assert p.stop(timeout=0.5) == -9
    assert time.monotonic() - started < 5


def test_waiting_for_a_process_that_exits_says_so_and_where_its_log_is(tmp_path: Path) -> None:
    p = procs.Process("quitter", [sys.executable, "-c", "exit(3)"], log=tmp_path / "q.log")
    p.start()
    with pytest.raises(BenchError, match=r"quitter exited \(3\); see .*q\.log"):
        p.wait_ready(lambda: False, timeout=20, interval=0.05)


def test_waiting_gives_up_after_the_timeout(tmp_path: Path) -> None:
    p, _ = forking(tmp_path)
    p.start()
    try:
        with pytest.raises(BenchError, match=r"forker not ready after 0\.2 s"):
            p.wait_ready(lambda: False, timeout=0.2, interval=0.05)
    finally:
        p.stop(timeout=5)


def test_stop_all_stops_every_process_and_tolerates_ones_never_started(tmp_path: Path) -> None:
    a, a_pid = forking(tmp_path / "a")
    b = procs.Process("never", ["true"], log=tmp_path / "n.log")
    (tmp_path / "a").mkdir()
    a.start()
    a.wait_ready(a_pid.exists, timeout=20, interval=0.05)
    procs.stop_all([a, b], timeout=5)
    assert not a.running()
    assert b.stop() is None


def test_a_free_port_can_be_bound() -> None:
    import socket

    port = procs.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_taskset_prefixes_only_when_there_is_a_cpu_list_and_taskset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(procs.shutil, "which", lambda name: "/usr/bin/taskset")
    assert procs.taskset("1-3") == ["taskset", "-c", "1-3"]
    assert procs.taskset("") == []
    assert procs.taskset(None) == []
    monkeypatch.setattr(procs.shutil, "which", lambda name: None)
    assert procs.taskset("1") == []


def test_http_ok_is_true_for_200_only() -> None:
    with serve({"/readyz": (200, {}), "/busy": (503, {})}) as (url, _):
        assert procs.http_ok(url + "/readyz")
        assert not procs.http_ok(url + "/busy")
    assert not procs.http_ok(url + "/readyz")  # nobody listens any more


def test_only_http_urls_are_opened() -> None:
    with pytest.raises(BenchError, match="not an http"):
        procs.urlopen("file:///etc/passwd", timeout=1)


def test_resident_memory_of_a_tree_sums_every_descendant(tmp_path: Path) -> None:
    for pid, rss_kib, kids in ((1, 1024, "2 3"), (2, 2048, "4"), (3, 512, ""), (4, 512, "")):
        (tmp_path / str(pid) / "task" / str(pid)).mkdir(parents=True)
        (tmp_path / str(pid) / "status").write_text(f"Name:\tx\nVmRSS:\t{rss_kib} kB\n")
        (tmp_path / str(pid) / "task" / str(pid) / "children").write_text(kids)
    assert procs.tree_rss_mib(1, proc=tmp_path) == 4.0
    assert procs.tree_rss_mib(2, proc=tmp_path) == 2.5
    assert procs.tree_rss_mib(os.getpid()) > 1
