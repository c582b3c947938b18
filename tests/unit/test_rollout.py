"""scripts/rollout.py: ``make rollout NAME= VERSION=`` (issue 10).

Specification: a rollout makes VERSION the model's current version in index.json, then sends
each replica SIGHUP in turn and waits until it serves VERSION; a replica that does not within
ROLLOUT_TIMEOUT makes the previous version current again and brings back every replica already
signalled. Refusals (unknown model or version, a rollout already running, no replicas) change
nothing and exit with status 2.

Docker is faked: replicas that, like the real ones, pin the repository's current versions when
they get SIGHUP. The real replicas' side (gunicorn re-reading the index) is the server's.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from model_server.repository import (
    INDEX_FILE,
    VersionEntry,
    load_index,
    publish,
    remove_version,
    set_current,
    staging,
)

from tests.loadgen.conftest import load_script

rollout = load_script("rollout")
rollout_fleet = sys.modules["scripts.rollout_fleet"]

PROJECT = "mf-unit"


@dataclass
class Replica:
    """One fake model container: the version it serves and how it reacts to SIGHUP."""

    serves: str
    #: A version its new workers cannot load: after SIGHUP to it, the old workers keep serving.
    broken: str | None = None
    #: Probes after a SIGHUP that still answer the old version (workers being replaced).
    slow_probes: int = 0
    ready: bool = True
    hup_fails: bool = False
    #: Probes after a SIGHUP for which ``docker exec`` fails (the container is restarting).
    exec_failures: int = 0
    pending: str | None = None
    left: int = 0
    drained: bool = False


class FakeDocker:
    """``docker`` for one compose project whose replicas pin the index's current version on HUP."""

    def __init__(
        self, repo: Path, ps_error: str | None = None, balancer: bool = True, **replicas: Replica
    ) -> None:
        self.repo = repo
        self.replicas = replicas
        self.ps_error = ps_error
        self.balancer = balancer
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> str:
        self.calls.append(list(args))
        assert timeout > 0
        if args[0] == "ps":
            assert f"label=com.docker.compose.project={PROJECT}" in args
            if "label=com.docker.compose.service=lb" in args:
                return "lb\n" if self.balancer else ""
            assert "label=com.docker.compose.service=model" in args
            if self.ps_error:
                raise rollout.DockerError(self.ps_error)
            return "".join(f"{replica}\n" for replica in self.replicas)
        if args[0] == "inspect":
            return f"10.0.0.{list(self.replicas).index(args[-1]) + 2}\n"
        assert args[0] == "exec"
        if args[1] == "lb":
            # upstream-sync, instantly: every replica that is not draining.
            assert args[2:] == ["cat", "/run/nginx/upstream.conf"]
            return "".join(
                f"server 10.0.0.{i + 2}:8080 max_conns=8;\n"
                for i, r in enumerate(self.replicas.values())
                if not r.drained
            )
        replica = self.replicas[args[1]]
        if tuple(args[2:]) in (rollout_fleet.DRAIN, rollout_fleet.UNDRAIN):
            replica.drained = tuple(args[2:]) == rollout_fleet.DRAIN
            return ""
        if tuple(args[2:]) == rollout.HUP:
            if replica.hup_fails:
                raise rollout.DockerError("docker exec: container is not running")
            current = load_index(self.repo).models["churn"].current
            if current != replica.broken:
                replica.pending, replica.left = current, replica.slow_probes
            return ""
        assert args[2:5] == ["python3", "-c", rollout.PROBE] and args[5] == "churn"
        if replica.exec_failures:
            replica.exec_failures -= 1
            raise rollout.DockerError("docker exec: container is restarting")
        if replica.pending is not None and replica.left == 0:
            replica.serves, replica.pending = replica.pending, None
        replica.left -= 1
        return json.dumps({"ready": replica.ready, "versions": [replica.serves] * 8})

    def signalled(self) -> list[str]:
        """The replicas sent SIGHUP, in order."""
        return [call[1] for call in self.calls if tuple(call[2:]) == rollout.HUP]

    def serving(self) -> dict[str, str]:
        return {name: replica.serves for name, replica in self.replicas.items()}


class FakeClock:
    """time.monotonic and time.sleep for a rollout that takes no real time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with model churn, versions 1 (current) and 2."""
    repo = tmp_path / "models"
    for version in ("1", "2"):
        with staging(repo) as tmp:
            (tmp / "manifest.json").write_text(f"churn {version}\n")
            entry = VersionEntry(version * 64, "f" * 64)
            publish(repo, tmp, "churn", version, entry)
    assert load_index(repo).models["churn"].current == "1"
    return repo


def run(repo: Path, docker: FakeDocker, version: str = "2", timeout: float = 5) -> int:
    """``make rollout NAME=churn VERSION=<version>`` against the fake docker."""
    fleet = rollout.Fleet(docker, PROJECT, timeout, clock := FakeClock(), clock.sleep)
    try:
        return rollout.rollout(repo, "churn", version, fleet)
    except rollout.Refused as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return rollout.REFUSED


def current(repo: Path) -> str:
    return load_index(repo).models["churn"].current


def steps(docker: FakeDocker) -> list[str]:
    """The docker calls, named."""
    names = {rollout.HUP: "HUP", rollout_fleet.DRAIN: "drain", rollout_fleet.UNDRAIN: "undrain"}
    out = []
    for call in docker.calls:
        if call[0] == "ps":
            out.append("balancer" if "label=com.docker.compose.service=lb" in call else "replicas")
        elif call[0] == "inspect":
            out.append(f"address {call[-1]}")
        elif call[1] == "lb":
            out.append("upstream")
        else:
            out.append(f"{names.get(tuple(call[2:]), 'probe')} {call[1]}")
    return out


def test_a_rollout_makes_the_version_current_and_switches_the_replicas_one_at_a_time(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1", slow_probes=2))
    assert run(repo, docker) == rollout.OK
    assert current(repo) == "2"
    assert docker.serving() == {"a": "2", "b": "2"}
    # Each replica is drained out of the load balancer, signalled, probed until it serves the
    # version and put back; the next one only then.
    assert steps(docker) == [
        "replicas",
        *("drain a", "balancer", "address a", "upstream", "HUP a", "probe a"),
        *("undrain a", "balancer", "address a", "upstream"),
        *("drain b", "balancer", "address b", "upstream", "HUP b", "probe b", "probe b"),
        *("probe b", "undrain b", "balancer", "address b", "upstream"),
    ]
    assert docker.signalled() == ["a", "b"]
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "  replica a: serves churn 2 after 0.0 s",
        "  replica b: serves churn 2 after 1.0 s",
    ]
    # The report's path, then the verdict, last.
    assert re.fullmatch(
        rf"  report: {repo}/rollouts/\d{{8}}T\d{{6}}\.\d{{3}}Z-churn-2\.json", out[2]
    )
    assert out[3:] == ["rollout churn 2: OK on 2 replicas in 1.0 s"]


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", "2", "rollout: no model 'nope' in the repository; known models: churn"),
        ("churn", "3", "rollout: churn has no version '3': versions 1, 2"),
    ],
)
def test_an_unknown_model_or_version_is_refused_in_one_line_and_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str], name: str, version: str, message: str
) -> None:
    index = (repo / INDEX_FILE).read_bytes()
    docker = FakeDocker(repo, a=Replica("1"))
    assert rollout.main(["--repository", str(repo), name, version], docker) == rollout.REFUSED
    assert capsys.readouterr().err == message + "\n"
    assert (repo / INDEX_FILE).read_bytes() == index
    assert docker.calls == []


def test_rolling_out_the_current_version_again_makes_every_replica_serve_it(repo: Path) -> None:
    # The index says 2, but the replicas were never signalled (set-current by hand).
    set_current(repo, "churn", "2")
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("2"))
    assert run(repo, docker, "2") == rollout.OK
    assert current(repo) == "2"
    assert docker.serving() == {"a": "2", "b": "2"}
    assert docker.signalled() == ["a", "b"]


def test_a_probe_that_fails_is_tried_again_until_the_timeout(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1", exec_failures=3))
    assert run(repo, docker, timeout=5) == rollout.OK
    assert "replica a: serves churn 2 after 1.5 s" in capsys.readouterr().out
    # 2 is current now; a replica whose probes never stop failing fails the rollout of 1.
    docker = FakeDocker(repo, a=Replica("2", exec_failures=100))
    assert run(repo, docker, "1", timeout=1) == rollout.FAILED
    assert capsys.readouterr().err == (
        "rollout churn 1: FAILED on replica a: not serving 1 after 1 s "
        "(docker exec: container is restarting); rolled back to 2 in the index, but replica a: "
        "not serving 2 after 1 s (docker exec: container is restarting)\n"
    )


def test_a_failure_rolling_out_the_current_version_has_nothing_to_roll_back(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1", ready=False))
    assert run(repo, docker, "1", timeout=1) == rollout.FAILED
    assert capsys.readouterr().err == (
        "rollout churn 1: FAILED on replica a: not serving 1 after 1 s (not ready (/readyz)); "
        "1 was current already, nothing to roll back\n"
    )
    assert current(repo) == "1"


def test_a_rollback_to_a_version_removed_meanwhile_fails_in_the_verdict(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class RemovingDocker(FakeDocker):
        """Someone removes version 1 (no longer current) while replica b switches to 2."""

        def __call__(self, args: Sequence[str], timeout: float) -> str:
            if args[:2] == ["exec", "b"] and tuple(args[2:]) == rollout.HUP:
                remove_version(self.repo, "churn", "1")
            return super().__call__(args, timeout)

    docker = RemovingDocker(repo, a=Replica("1"), b=Replica("1", broken="2"))
    assert run(repo, docker, timeout=1) == rollout.FAILED
    assert capsys.readouterr().err == (
        "rollout churn 2: FAILED on replica b: not serving 2 after 1 s (answers 1); "
        "rollback to 1 FAILED: churn has no version '1': versions 2\n"
    )
    assert current(repo) == "2"


def test_a_second_rollout_is_refused_while_one_runs_and_names_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"))
    with rollout.rollout_lock(repo, "churn 1"):
        assert run(repo, docker) == rollout.REFUSED
    assert capsys.readouterr().err == (
        f"rollout: another rollout is running: churn 1 (pid {os.getpid()}); nothing changed\n"
    )
    assert current(repo) == "1"
    assert docker.calls == []
    # Released when the running rollout ends, whatever its outcome.
    assert run(repo, docker) == rollout.OK


def test_a_replica_that_never_serves_the_version_rolls_everything_back(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1", broken="2"), c=Replica("1"))
    assert run(repo, docker, timeout=5) == rollout.FAILED
    assert current(repo) == "1"
    # a and b were signalled for 2, then both for 1 again; c was never touched.
    assert docker.signalled() == ["a", "b", "a", "b"]
    assert docker.serving() == {"a": "1", "b": "1", "c": "1"}
    assert capsys.readouterr().err == (
        "rollout churn 2: FAILED on replica b: not serving 2 after 5 s (answers 1); "
        "rolled back to 1 in 0.0 s (no requests to 2 after 0.0 s)\n"
    )


def test_a_replica_that_stays_unready_fails_the_rollout(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1", ready=False))
    assert run(repo, docker, timeout=2) == rollout.FAILED
    assert current(repo) == "1"
    assert "FAILED on replica a: not serving 2 after 2 s (not ready (/readyz))" in (
        capsys.readouterr().err
    )


def test_a_docker_error_fails_the_rollout_and_the_verdict_says_what_was_not_rolled_back(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1", hup_fails=True))
    assert run(repo, docker) == rollout.FAILED
    assert current(repo) == "1"
    assert docker.serving() == {"a": "1", "b": "1"}
    assert capsys.readouterr().err == (
        "rollout churn 2: FAILED on replica b: docker exec: container is not running; "
        "rolled back to 1 in the index, but replica b: docker exec: container is not running\n"
    )


def test_without_running_replicas_the_rollout_is_refused_and_the_index_unchanged(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(repo, FakeDocker(repo)) == rollout.REFUSED
    assert capsys.readouterr().err == (
        f"rollout: no running model replicas in compose project '{PROJECT}' (make up first); "
        "nothing changed\n"
    )
    assert current(repo) == "1"


def test_a_docker_that_cannot_list_the_replicas_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, ps_error="docker ps: Cannot connect to the Docker daemon")
    assert run(repo, docker) == rollout.REFUSED
    assert capsys.readouterr().err == (
        "rollout: docker ps: Cannot connect to the Docker daemon; nothing changed\n"
    )
    assert current(repo) == "1"


def test_the_command_line_reads_the_project_and_timeout_from_the_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", PROJECT)
    argv = ["--repository", str(repo), "churn", "2"]
    for bad in ("0", "soon", "nan"):
        monkeypatch.setenv("ROLLOUT_TIMEOUT", bad)
        assert rollout.main(argv, FakeDocker(repo, a=Replica("1"))) == rollout.REFUSED
        assert "ROLLOUT_TIMEOUT must be a positive number of seconds" in capsys.readouterr().err
    monkeypatch.setenv("ROLLOUT_TIMEOUT", "0.5")
    assert rollout.main(argv, FakeDocker(repo, a=Replica("1"))) == rollout.OK
    assert current(repo) == "2"


# ---- the real docker runner and the probe run inside a replica --------------------------------


def fake_docker_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put an executable ``docker`` running ``body`` (sh) first on PATH."""
    binary = tmp_path / "bin" / "docker"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\n{body}\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}:/usr/bin:/bin")


def test_docker_gets_an_argument_list_without_a_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker_binary(tmp_path, monkeypatch, "printf '<%s>' \"$@\"")
    assert rollout.run_docker(["exec", "a b", "$(id)", "'"], 5) == "<exec><a b><$(id)><'>"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "echo noise >&2; echo 'Error: No such container: a' >&2; exit 1",
            "docker exec: Error: No such container: a",
        ),
        ("exit 3", "docker exec: exit status 3"),
        ("exec sleep 5", "docker exec timed out after 0.2 s"),
    ],
)
def test_a_failing_docker_command_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    fake_docker_binary(tmp_path, monkeypatch, body)
    with pytest.raises(rollout.DockerError) as caught:
        rollout.run_docker(["exec", "a"], 0.2)
    assert str(caught.value) == message


def test_a_missing_docker_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(rollout.DockerError, match=r"^docker: No such file or directory"):
        rollout.run_docker(["ps"], 5)


@pytest.fixture
def replica_http() -> Iterator[tuple[int, dict[str, tuple[int, bytes]]]]:
    """A local HTTP server answering what ``answers`` maps each path to (status, body)."""
    answers: dict[str, tuple[int, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.get(self.path, (404, b"{}"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], answers
    server.shutdown()
    server.server_close()
    thread.join(5)


def probe(port: int) -> dict[str, object]:
    """Run the probe as ``docker exec`` does, against 127.0.0.1:<port> instead of 8080."""
    script = rollout.PROBE.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    out = subprocess.run(
        [sys.executable, "-c", script, "churn"], capture_output=True, text=True, check=True
    )
    answer: dict[str, object] = json.loads(out.stdout)
    return answer


def test_the_probe_reports_readiness_and_the_version_of_each_answer(
    replica_http: tuple[int, dict[str, tuple[int, bytes]]],
) -> None:
    port, answers = replica_http
    answers["/readyz"] = (200, b'{"status": "ready"}')
    answers["/models/churn"] = (200, b'{"name": "churn", "version": "2"}')
    assert probe(port) == {"ready": True, "versions": ["2"] * rollout_fleet.PROBE_REQUESTS}
    answers["/readyz"] = (503, b'{"status": "loading"}')
    answers["/models/churn"] = (500, b"<html>")
    assert probe(port) == {"ready": False, "versions": ["HTTP 500"] * rollout_fleet.PROBE_REQUESTS}
    answers["/models/churn"] = (503, b'{"error": {"code": "model_unavailable", "message": "."}}')
    unavailable = ["HTTP 503 model_unavailable"] * rollout_fleet.PROBE_REQUESTS
    assert probe(port) == {"ready": False, "versions": unavailable}
    # Draining (the rollout's own doing) is ready: the models are loaded.
    answers["/readyz"] = (503, b'{"status": "draining"}')
    answers["/models/churn"] = (200, b'{"name": "churn", "version": "2"}')
    assert probe(port) == {"ready": True, "versions": ["2"] * rollout_fleet.PROBE_REQUESTS}


# ---- draining: out of the load balancer while switching ----------------------------------------


def test_one_replica_is_switched_in_place_without_draining(repo: Path) -> None:
    docker = FakeDocker(repo, a=Replica("1"))
    assert run(repo, docker) == rollout.OK
    assert steps(docker) == ["replicas", "HUP a", "probe a"]


def test_without_a_load_balancer_replicas_are_drained_without_waiting_for_it(repo: Path) -> None:
    docker = FakeDocker(repo, balancer=False, a=Replica("1"), b=Replica("1"))
    assert run(repo, docker) == rollout.OK
    assert steps(docker)[:4] == ["replicas", "drain a", "balancer", "HUP a"]
    assert not any(r.drained for r in docker.replicas.values())


def test_a_failed_step_drains_every_switched_replica_before_switching_them_back(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1", broken="2"), c=Replica("1"))
    assert run(repo, docker) == rollout.FAILED
    names = steps(docker)
    back = names.index("drain a", names.index("drain b"))  # the rollback starts
    assert names[back:] == [
        *("drain a", "drain b", "balancer", "address a", "address b", "upstream"),
        *("HUP a", "probe a", "HUP b", "probe b"),
        *("undrain a", "undrain b", "balancer", "address a", "address b", "upstream"),
    ]
    assert not any(r.drained for r in docker.replicas.values())
    assert "(no requests to 2 after 0.0 s)" in capsys.readouterr().err


def test_a_replica_the_load_balancer_keeps_sending_to_fails_the_step(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1"))
    real = docker.__call__

    def stuck(args: Sequence[str], timeout: float) -> str:
        if args[:2] == ["exec", "lb"]:
            real(args, timeout)
            return "server 10.0.0.2:8080;\nserver 10.0.0.3:8080;\n"  # never changes
        return real(args, timeout)

    fleet = rollout.Fleet(stuck, PROJECT, 60, clock := FakeClock(), clock.sleep)
    assert rollout.rollout(repo, "churn", "2", fleet) == rollout.FAILED
    err = capsys.readouterr().err
    assert "FAILED on replica a: not out of the load balancer after 20 s" in err
    assert current(repo) == "1"
