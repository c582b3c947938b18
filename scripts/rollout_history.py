"""The rollout history kept beside the model repository: ``<repo>/rollouts.jsonl``.

One JSON object a line, one line per rollout or rollback that changed something (refusals
change nothing and are not recorded): when, which model, from which version to which, the
outcome, the one-line verdict, the replicas and the seconds it took. ``make rollback`` reads it
to find the version a model came from, as ``kubectl rollout undo`` reads a Deployment's
revisions.

Each line is appended with one ``write`` on a file opened ``O_APPEND``, under the rollout lock:
a line is in the file whole or not at all, and two rollouts never interleave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from model_server.repository import HISTORY_FILE

__all__ = ["HISTORY_FILE", "Entry", "entries", "previous_version", "record"]

Action = Literal["rollout", "rollback"]
Outcome = Literal["OK", "FAILED"]


@dataclass(frozen=True)
class Entry:
    """One rollout as the history keeps it."""

    model: str
    from_version: str
    to_version: str
    action: Action
    outcome: Outcome
    verdict: str
    replicas: int
    seconds: float
    #: UTC, ISO 8601 to the second.
    time: str = ""

    def to_json(self) -> bytes:
        """The history line, newline included."""
        fields = asdict(self)
        fields["from"], fields["to"] = fields.pop("from_version"), fields.pop("to_version")
        fields["seconds"] = round(self.seconds, 1)
        fields["time"] = self.time or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json.dumps(fields, sort_keys=True).encode() + b"\n"


def record(repo: Path, entry: Entry) -> None:
    """Append ``entry`` to the history (created on first use)."""
    fd = os.open(repo / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, entry.to_json())
    finally:
        os.close(fd)


def entries(repo: Path) -> Iterator[dict[str, object]]:
    """The recorded rollouts, oldest first; lines that are not a JSON object are skipped."""
    try:
        lines = (repo / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item


def previous_version(repo: Path, name: str, current: str) -> str | None:
    """The version ``name`` came from when it last became ``current`` by a successful rollout
    or rollback; None when the history holds no such change."""
    found = None
    for item in entries(repo):
        ok = item.get("model") == name and item.get("outcome") == "OK"
        if ok and item.get("to") == current and item.get("from") != current:
            found = item.get("from")
    return found if isinstance(found, str) else None
