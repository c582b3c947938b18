"""`docker compose up --build` from a fresh clone, without make: the Python images install their
hash-locked dependencies from a package index when the build context holds no wheelhouse.

The index is pypiserver on 127.0.0.1 serving the wheelhouses that `make wheels` and
`make wheels-loadgen` download (the same files, fetched with the same pip flags), with no
fallback to PyPI, and its access log must show every locked distribution downloaded: the build
used the index it was given, and nothing else. The build context is a copy of the worktree as a
fresh clone has it (tracked and untracked-but-not-ignored files: no build/), built through
compose.yaml with BUILD_NETWORK=host so the build reaches 127.0.0.1 (Docker's ordinary build
network is the default), under a throwaway image tag removed afterwards. Each image is then run:
the model server must answer /readyz and a prediction, Locust must start.

The model server's image takes about 100 s on two cores, most of it installing
numpy/scipy/scikit-learn, so it is built by `make test-long` (marker ``long``); `make test` builds
the loadgen image (about 35 s), which goes through the same Dockerfile helper
(install-locked.sh) and compose build arguments. The model server is run on the clone's model
repository, mounted as compose.yaml mounts it. The images build one after the other to keep the
machine's load bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bench import models
from tests.stack.stackctl import require_docker

ROOT = Path(__file__).resolve().parents[2]
TAG = f"indextest{os.getpid()}"
WHEELHOUSES = ("build/wheelhouse", "build/wheelhouse-loadgen")


@dataclass(frozen=True)
class IndexBuild:
    """A fresh-clone build context and a local package index to build it from."""

    context: Path
    index_url: str
    access_log: Path
    env: dict[str, str]

    def build(self, service: str) -> str:
        """Build one service's image through compose.yaml; return the build output."""
        proc = subprocess.run(
            [str(ROOT / "scripts" / "compose"), "-f", str(self.context / "compose.yaml"),
             "--profile", "loadtest", "--progress", "plain", "build", service],
            env=self.env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-6000:]
        return output

    def downloaded(self) -> set[str]:
        """Files the index has served (HTTP 200) so far."""
        log = self.access_log.read_text()
        return set(re.findall(r'"GET /packages/([^ ?#"]+) HTTP/1\.[01]" 200', log))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fresh_clone(dest: Path) -> None:
    """Copy the files a fresh clone of the worktree would have (no build/, no .venv)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        src = ROOT / name
        if not src.exists():  # deleted in the worktree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name, follow_symlinks=False)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> set[tuple[str, str]]:
    """(normalized name, version) of every distribution pinned in a requirements lock."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.MULTILINE)
    return {(_normalize(name), version) for name, version in pins}


def wheels(files: set[str]) -> set[tuple[str, str]]:
    """(normalized name, version) of wheel file names."""
    return {(_normalize(f.split("-")[0]), f.split("-")[1]) for f in files if f.endswith(".whl")}


@pytest.fixture(scope="module")
def index_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexBuild]:
    """A fresh-clone context and pypiserver on 127.0.0.1 serving the downloaded wheelhouses."""
    require_docker()
    # The wheelhouses, downloaded the one way the project downloads them (a no-op under
    # `make test`, whose image builds need them anyway).
    subprocess.run(
        ["make", "--no-print-directory", "wheels", "wheels-loadgen"], cwd=ROOT, check=True,
        timeout=900,
    )  # fmt: skip
    work = tmp_path_factory.mktemp("index-build")
    context = work / "clone"
    _fresh_clone(context)
    assert not (context / "build").exists()
    port = _free_port()
    access_log = work / "pypiserver.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "pypi-server"), "run", "-v", "-i", "127.0.0.1",
         "-p", str(port), "--disable-fallback", "-a", ".", "-P", ".",
         "--log-file", str(access_log), "--log-stream", "none",
         *(str(ROOT / w) for w in WHEELHOUSES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    index_url = f"http://127.0.0.1:{port}/simple/"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": os.environ.get("MODELFLEET_TEST_PROJECT", "modelfleet-test")
        + "-index",
        "MODELFLEET_TAG": TAG,
        "PIP_INDEX_URL": index_url,
        "BUILD_NETWORK": "host",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(index_url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, "pypiserver exited"
            assert time.monotonic() < deadline, "pypiserver did not answer in 30 s"
            time.sleep(0.3)
        yield IndexBuild(context, index_url, access_log, env)
    finally:
        server.terminate()
        server.wait(timeout=10)
        for image in ("model-server", "loadgen"):
            subprocess.run(
                ["docker", "rmi", f"modelfleet/{image}:{TAG}"], capture_output=True, check=False
            )


def assert_installed_from_the_index(index_build: IndexBuild, output: str, lock: Path) -> None:
    """The build said it used the index, and the index served every locked distribution."""
    assert f"from the index {index_build.index_url}" in output, output[-6000:]
    missing = locked(lock) - wheels(index_build.downloaded())
    assert not missing, f"not downloaded from the local index: {sorted(missing)}"


@pytest.mark.long
def test_model_server_image_builds_from_the_index_without_a_wheelhouse(
    index_build: IndexBuild,
) -> None:
    started = time.monotonic()
    output = index_build.build("model")
    print(f"model server image built from the index in {time.monotonic() - started:.1f} s")
    assert_installed_from_the_index(
        index_build, output, ROOT / "services" / "model-server" / "requirements.lock"
    )
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080",
         "-v", f"{index_build.context / 'models'}:/opt/modelfleet/models:ro",
         f"modelfleet/model-server:{TAG}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        address = subprocess.run(
            ["docker", "port", container, "8080/tcp"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        url = f"http://{address}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            assert time.monotonic() < deadline, "the model server was not ready within 90 s"
            time.sleep(0.5)
        answer = requests.get(url + models.plumber_path(url), timeout=5)
        assert answer.status_code == 200, answer.text
        assert answer.json()["Answer"] in (["yes"], ["no"])
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def test_loadgen_image_builds_from_the_index_without_a_wheelhouse(
    index_build: IndexBuild,
) -> None:
    started = time.monotonic()
    output = index_build.build("loadgen")
    print(f"loadgen image built from the index in {time.monotonic() - started:.1f} s")
    assert_installed_from_the_index(
        index_build, output, ROOT / "services" / "loadgen" / "requirements.lock"
    )
    version = subprocess.run(
        ["docker", "run", "--rm", f"modelfleet/loadgen:{TAG}", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert re.search(r"locust \d+\.\d+", version.stdout + version.stderr), version
