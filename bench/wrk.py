"""wrk, bounded, with machine-readable output.

Every run uses ``bench/request.lua``: it sends one fixed request (method, body file and content
type from the environment) at full speed, and its ``done()`` prints the figures as one line,
``BENCH_RESULT {json}``, which :func:`parse` reads. No text scraping of wrk's report.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError
from bench.procs import taskset

LUA = ROOT / "bench" / "request.lua"
PREFIX = "BENCH_RESULT "
#: The keys request.lua writes, all integers but the mean latency.
FIELDS = (
    "requests",
    "duration_us",
    "bytes",
    "connect_errors",
    "read_errors",
    "write_errors",
    "status_errors",
    "timeouts",
    "latency_mean_us",
    "latency_p50_us",
    "latency_p90_us",
    "latency_p99_us",
    "latency_max_us",
)


class WrkError(BenchError):
    """wrk failed, or printed no result line."""


@dataclass(frozen=True)
class WrkResult:
    """One run's figures, as request.lua reported them (``raw``), and what follows from them."""

    raw: dict[str, Any]

    @property
    def requests(self) -> int:
        return int(self.raw["requests"])

    @property
    def seconds(self) -> float:
        return float(self.raw["duration_us"]) / 1e6

    @property
    def rps(self) -> float:
        """Completed requests per second of the run (what wrk prints as Requests/sec)."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return float(self.raw["latency_p50_us"]) / 1000

    @property
    def p99_ms(self) -> float:
        return float(self.raw["latency_p99_us"]) / 1000

    @property
    def status_errors(self) -> int:
        """Answers with a status other than 2xx or 3xx."""
        return int(self.raw["status_errors"])

    @property
    def socket_errors(self) -> int:
        """Connect, read and write errors, and timeouts."""
        return sum(
            int(self.raw[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        )

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def parse(stdout: str) -> WrkResult:
    """The ``BENCH_RESULT`` line of wrk's output; WrkError when there is none or it is partial."""
    line = next((x for x in stdout.splitlines() if x.startswith(PREFIX)), None)
    if line is None:
        raise WrkError(f"no {PREFIX.strip()} line in wrk's output: {stdout[-300:]!r}")
    raw = json.loads(line.removeprefix(PREFIX))
    missing = [k for k in FIELDS if k not in raw]
    if missing:
        raise WrkError(f"wrk's result lacks {', '.join(missing)}")
    return WrkResult(raw)


@dataclass(frozen=True)
class Request:
    """What wrk sends, over and over."""

    url: str
    method: str = "GET"
    body_file: Path | None = None
    content_type: str = "application/json"

    def env(self) -> dict[str, str]:
        """The environment request.lua reads."""
        out = {"BENCH_METHOD": self.method, "BENCH_CONTENT_TYPE": self.content_type}
        if self.body_file is not None:
            out["BENCH_BODY_FILE"] = str(self.body_file)
        return out


def command(
    request: Request,
    *,
    connections: int,
    duration: int,
    timeout: str = "10s",
    cpus: str | None = None,
    wrk: str = "wrk",
) -> list[str]:
    """wrk with one thread, ``connections`` keep-alive connections, for ``duration`` s (>= 1)."""
    return [
        *taskset(cpus),
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, duration)}s",
        "--timeout",
        timeout,
        "-s",
        str(LUA),
        request.url,
    ]


def run(
    request: Request,
    *,
    connections: int,
    duration: int,
    timeout: str = "10s",
    cpus: str | None = None,
    wrk: str = "wrk",
) -> WrkResult:
    """One wrk run, killed if it outlives its duration by a minute."""
    cmd = command(
        request, connections=connections, duration=duration, timeout=timeout, cpus=cpus, wrk=wrk
    )
    out = subprocess.run(
        cmd,
        env={**os.environ, **request.env()},
        capture_output=True,
        text=True,
        timeout=max(1, duration) + 60,
        check=False,
    )
    if out.returncode != 0:
        raise WrkError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    return parse(out.stdout)
