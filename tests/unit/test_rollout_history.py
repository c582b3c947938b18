"""The rollout history and ``make rollback NAME=`` (scripts/rollout_history.py, issue 12).

Specification: every rollout that changed something appends one line to
``<repo>/rollouts.jsonl`` (when, model, from, to, action, outcome, verdict, replicas, seconds);
a refused one appends nothing. A rollback rolls out, with a rollout's care, the version the
model came from when it last became current; a second rollback undoes the first. Without such
a history entry, or when that version was removed, a rollback is refused and changes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from model_server.repository import remove_version, set_current
from test_rollout import PROJECT, FakeClock, FakeDocker, Replica, current, repo, rollout, run

from scripts import rollout_history

__all__ = ["repo"]  # the fixture, shared with test_rollout.py


def history(repo: Path) -> list[dict[str, object]]:
    """The history file's lines, parsed."""
    path = repo / rollout_history.HISTORY_FILE
    return [json.loads(line) for line in path.read_text().splitlines()]


def rollback(repo: Path, docker: FakeDocker, timeout: float = 5) -> int:
    """``make rollback NAME=churn`` against the fake docker."""
    fleet = rollout.Fleet(docker, PROJECT, timeout, clock := FakeClock(), clock.sleep)
    try:
        target = rollout.rollback_target(repo, "churn")
        return rollout.rollout(repo, "churn", target, fleet, action="rollback")
    except rollout.Refused as exc:
        print(f"rollback: {exc}", file=sys.stderr)
        return rollout.REFUSED


def test_a_rollout_appends_what_it_did_to_the_history(repo: Path) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1", slow_probes=2))
    assert run(repo, docker) == rollout.OK
    [line] = history(repo)
    assert {k: line[k] for k in ("model", "from", "to", "action", "outcome", "replicas")} == {
        "model": "churn",
        "from": "1",
        "to": "2",
        "action": "rollout",
        "outcome": "OK",
        "replicas": 2,
    }
    assert line["verdict"] == f"rollout churn 2: OK on 2 replicas in {line['seconds']} s"
    assert str(line["time"]).endswith("Z")


def test_a_failed_rollout_is_recorded_with_its_verdict(repo: Path) -> None:
    docker = FakeDocker(repo, a=Replica("1", broken="2"))
    assert run(repo, docker, timeout=1) == rollout.FAILED
    [line] = history(repo)
    assert (line["outcome"], line["from"], line["to"]) == ("FAILED", "1", "2")
    assert "FAILED on replica a: not serving 2 after 1 s" in str(line["verdict"])


def test_a_refused_rollout_leaves_no_history(repo: Path) -> None:
    assert run(repo, FakeDocker(repo, a=Replica("1")), version="9") == rollout.REFUSED
    assert not (repo / rollout_history.HISTORY_FILE).exists()


def test_a_rollback_returns_to_the_version_the_model_came_from_and_a_second_one_undoes_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"), b=Replica("1"))
    assert run(repo, docker) == rollout.OK
    assert rollback(repo, docker) == rollout.OK
    assert current(repo) == "1"
    assert docker.serving() == {"a": "1", "b": "1"}
    assert "rollback churn 1: OK on 2 replicas" in capsys.readouterr().out
    assert rollback(repo, docker) == rollout.OK
    assert current(repo) == "2"
    assert [(h["action"], h["from"], h["to"]) for h in history(repo)] == [
        ("rollout", "1", "2"),
        ("rollback", "2", "1"),
        ("rollback", "1", "2"),
    ]


def test_a_failed_rollout_is_not_where_a_rollback_returns_from(repo: Path) -> None:
    docker = FakeDocker(repo, a=Replica("1", broken="2"))
    assert run(repo, docker, timeout=1) == rollout.FAILED
    assert rollback(repo, docker) == rollout.REFUSED
    assert current(repo) == "1"


def test_without_a_history_a_rollback_is_refused_and_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_current(repo, "churn", "2")  # made current without a rollout: nothing to go back to
    docker = FakeDocker(repo, a=Replica("2"))
    assert rollback(repo, docker) == rollout.REFUSED
    assert capsys.readouterr().err == (
        "rollback: the rollout history (rollouts.jsonl) has no rollout that made churn 2 "
        "current; roll out a version by name: make rollout NAME=churn VERSION=<version>\n"
    )
    assert (current(repo), docker.calls) == ("2", [])


def test_a_rollback_to_a_removed_version_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(repo, a=Replica("1"))
    assert run(repo, docker) == rollout.OK
    remove_version(repo, "churn", "1")
    assert rollback(repo, docker) == rollout.REFUSED
    assert "churn came from version '1', which was removed since" in capsys.readouterr().err
    assert current(repo) == "2"


def test_an_unknown_model_cannot_be_rolled_back(repo: Path) -> None:
    with pytest.raises(rollout.Refused, match="no model 'nope' in the repository"):
        rollout.rollback_target(repo, "nope")


def test_lines_that_are_not_json_objects_are_skipped(repo: Path) -> None:
    (repo / rollout_history.HISTORY_FILE).write_bytes(
        b'{"model": "churn", "outcome": "OK", "from": "1", "to": "2"}\nnot json\n[1]\n\xff\xfe\n'
    )
    assert rollout_history.previous_version(repo, "churn", "2") == "1"
    assert rollout_history.previous_version(repo, "churn", "1") is None


def test_the_command_line_rolls_back_with_make_rollbacks_arguments(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", PROJECT)
    monkeypatch.setenv("ROLLOUT_TIMEOUT", "0.5")
    docker = FakeDocker(repo, a=Replica("1"))
    assert rollout.main(["--repository", str(repo), "churn", "2"], docker) == rollout.OK
    assert rollout.main(["--repository", str(repo), "--rollback", "churn"], docker) == rollout.OK
    assert current(repo) == "1"
    with pytest.raises(SystemExit) as usage:
        rollout.main(["--repository", str(repo), "--rollback", "churn", "2"], docker)
    assert usage.value.code == 2
    assert "give NAME and VERSION, or --rollback and NAME alone" in capsys.readouterr().err
    assert rollout.main(["--repository", str(repo), "--rollback", "nope"], docker) == 2
    assert capsys.readouterr().err.startswith("rollback: no model 'nope' in the repository")
