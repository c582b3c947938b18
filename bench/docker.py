"""The Docker engine: is it there, a project's containers, their CPU and memory, sampled."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
from typing import Any
from urllib.parse import quote

from bench import cpu


def available() -> bool:
    """True when the docker CLI is installed and the engine answers."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def server_version() -> str:
    out = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


class DockerEngine:
    """The engine's API on its unix socket: containers by project label, CPU, memory."""

    def __init__(self, path: str = "/var/run/docker.sock") -> None:
        self.path = path

    def _get(self, url: str) -> Any:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.settimeout(10)
        conn.sock.connect(self.path)
        try:
            conn.request("GET", url)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def containers(self, project: str) -> dict[str, str]:
        """Running container id -> compose service, for one project."""
        label = quote(json.dumps({"label": [f"com.docker.compose.project={project}"]}))
        return {
            c["Id"]: c["Labels"].get("com.docker.compose.service", "?")
            for c in self._get(f"/containers/json?filters={label}")
        }

    def _stats(self, container: str) -> Any:
        return self._get(f"/containers/{container}/stats?stream=false&one-shot=true")

    def cpu_seconds(self, container: str) -> float | None:
        """Cumulative CPU time: from the container's cgroup when this host shows it (instant),
        else from the engine's stats API (about a second per call on Docker 20.10)."""
        seconds = cpu.container_seconds(container)
        if seconds is not None:
            return seconds
        try:
            return float(self._stats(container)["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
        except (OSError, KeyError, ValueError, TypeError):
            return None

    def memory_bytes(self, container: str) -> float | None:
        """Working set: memory usage less reclaimable page cache (what `docker stats` shows)."""
        try:
            mem = self._stats(container)["memory_stats"]
            stats = mem.get("stats", {})
            cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
            return float(mem["usage"] - cache)
        except (OSError, KeyError, ValueError, TypeError):
            return None

    def anonymous_bytes(self, container: str) -> float | None:
        """Anonymous memory: what the container's processes hold themselves (heap, stacks),
        without any page cache. What a leak grows; the working set also moves with file pages
        being promoted to the active list (a recycled worker rereading its modules)."""
        try:
            stats = self._stats(container)["memory_stats"]["stats"]
            for key in ("total_rss", "rss", "anon"):  # cgroup v1 (hierarchical, own), v2
                if key in stats:
                    return float(stats[key])
        except (OSError, KeyError, ValueError, TypeError):
            pass
        return None

    def working_set_mib(self, project: str, services: tuple[str, ...]) -> float | None:
        """Summed working set of the project's containers of those services (None: unknown)."""
        total = 0.0
        for cid, service in self.containers(project).items():
            if service in services:
                mem = self.memory_bytes(cid)
                if mem is None:
                    return None
                total += mem
        return round(total / 2**20, 1)


class CpuSampler(threading.Thread):
    """Samples containers' CPU time every ``interval`` s; cores = delta CPU / delta time.

    The containers are sampled in parallel, and only the services asked for: a stats call (when
    the cgroup is not visible here) takes about a second.
    """

    def __init__(
        self,
        engine: DockerEngine,
        project: str,
        services: tuple[str, ...] = ("lb", "loadgen", "prometheus"),
        interval: float = 2.0,
    ) -> None:
        super().__init__(daemon=True)
        self.engine, self.project, self.interval = engine, project, interval
        self.services = services
        self.first: dict[str, tuple[float, float]] = {}
        self.last: dict[str, tuple[float, float]] = {}
        self.service: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def sample(self, cid: str, service: str, now: float | None = None) -> None:
        seconds = self.engine.cpu_seconds(cid)
        if seconds is None:
            return
        now = time.monotonic() if now is None else now
        with self.lock:
            self.service[cid] = service
            self.first.setdefault(cid, (now, seconds))
            self.last[cid] = (now, seconds)

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError, ValueError):
                threads = [
                    threading.Thread(target=self.sample, args=(cid, service), daemon=True)
                    for cid, service in self.engine.containers(self.project).items()
                    if service in self.services
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=10)
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()

    def cores_by_service(self) -> dict[str, float]:
        """Average cores per service over the sampled time (containers seen for less than one
        interval are left out)."""
        out: dict[str, float] = {}
        for cid, (t0, c0) in self.first.items():
            t1, c1 = self.last[cid]
            if t1 - t0 >= self.interval:
                out[self.service[cid]] = out.get(self.service[cid], 0.0) + (c1 - c0) / (t1 - t0)
        return {k: round(v, 3) for k, v in out.items()}
