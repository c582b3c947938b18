"""The rollout history kept beside the model repository: ``<repo>/rollouts.jsonl``.

One JSON object a line, one line per rollout or rollback that changed something (refusals
change nothing and are not recorded): when, which model, from which version to which, the
outcome, the one-line verdict, the replicas, the seconds it took and its report. The report,
``<repo>/rollouts/<time>-<model>-<version>.json``, holds the same and every step's figures:
each replica's switch, each bake's gates (excess, tolerance, the failing gate's candidate and
stable figures), the failure and the rollback's timings. ``make rollback`` reads it
to find the version a model came from, as ``kubectl rollout undo`` reads a Deployment's
revisions.

Each line is appended with one ``write`` on a file opened ``O_APPEND``, under the rollout lock:
a line is in the file whole or not at all, and two rollouts never interleave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from model_server.repository import HISTORY_FILE, history_entries

__all__ = ["HISTORY_FILE", "REPORTS_DIR", "Entry", "previous_version", "record"]

#: The reports' directory in the repository: one JSON file per recorded rollout.
REPORTS_DIR = "rollouts"

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
    #: The report's path in the repository ("" without one).
    report: str = ""

    def fields(self) -> dict[str, object]:
        """The history line's fields."""
        fields = asdict(self)
        fields["from"], fields["to"] = fields.pop("from_version"), fields.pop("to_version")
        fields["seconds"] = round(self.seconds, 1)
        fields["time"] = self.time or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return fields

    def to_json(self) -> bytes:
        """The history line, newline included."""
        return json.dumps(self.fields(), sort_keys=True).encode() + b"\n"


def record(repo: Path, entry: Entry, details: Mapping[str, object] | None = None) -> Entry:
    """Append ``entry`` to the history (created on first use); with ``details``, first write
    its report, whole or not at all, and name it in the entry. The entry as recorded."""
    if details is not None:
        entry = _report(repo, entry, details)
    fd = os.open(repo / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, entry.to_json())
    finally:
        os.close(fd)
    return entry


def _report(repo: Path, entry: Entry, details: Mapping[str, object]) -> Entry:
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    entry = replace(
        entry,
        time=entry.time or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        report=f"{REPORTS_DIR}/{stamp}-{entry.model}-{entry.to_version}.json",
    )
    body = {**entry.fields(), **details}
    path = repo / entry.report
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)  # the report is there whole, or not at all
    return entry


def previous_version(repo: Path, name: str, current: str) -> str | None:
    """The version ``name`` came from when it last became ``current`` by a successful rollout
    or rollback; None when the history holds no such change."""
    found = None
    for item in history_entries(repo):
        ok = item.get("model") == name and item.get("outcome") == "OK"
        if ok and item.get("to") == current and item.get("from") != current:
            found = item.get("from")
    return found if isinstance(found, str) else None
