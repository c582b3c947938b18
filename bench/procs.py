"""Processes a benchmark starts: its own session, ready when a probe says so, stopped as a whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import BenchError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def taskset(cpus: str | None) -> list[str]:
    """The ``taskset -c CPUS`` prefix that pins a command, or nothing (no CPU list, no taskset)."""
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def urlopen(req: str | urllib.request.Request, timeout: float) -> Any:
    """urlopen for http(s) URLs only: URLs come from the caller's environment, and urllib would
    just as well open file:// or ftp:// ones."""
    url = req.full_url if isinstance(req, urllib.request.Request) else req
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise BenchError(f"not an http(s) URL: {url}")
    # bandit's B310 (file:// and custom schemes) is what the check above rules out.
    return urllib.request.urlopen(req, timeout=timeout)  # nosec B310


def http_ok(url: str, timeout: float = 2) -> bool:
    """True when a GET of ``url`` answers 200; False on any other status or connection error."""
    try:
        with urlopen(url, timeout=timeout) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Process:
    """One command run in its own session (process group), its output in a log file.

    ``stop()`` signals the whole group, so whatever the command forked (gunicorn's workers, a
    server's reloader) stops with it.
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        log: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(
        self, probe: Callable[[], bool], timeout: float = 90, interval: float = 0.2
    ) -> None:
        """Until ``probe()`` is true; BenchError when the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise BenchError(f"{self.name} exited ({code}); see {self.log}")
            if probe():
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not ready after {timeout:g} s; see {self.log}")
            time.sleep(interval)

    def stop(self, timeout: float = 25) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Whatever of the group outlived its leader (a worker that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def stop_all(processes: Sequence[Process], timeout: float = 25) -> None:
    """Stop every process: all are signalled first, so they shut down in parallel."""
    for p in processes:
        if p.running():
            assert p.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGTERM)
    for p in processes:
        p.stop(timeout)


def tree_rss_mib(pid: int, proc: Path = Path("/proc")) -> float:
    """Resident memory (MiB) of a process and all its descendants, from ``/proc``."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in (proc / str(p) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in (proc / str(p) / "task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return round(total / 1024, 1)
