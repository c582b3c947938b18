"""Every route answers exactly as it did before the request pipeline was restructured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flask import Flask
from recorded_responses import RECORDING, cases, replay

RECORDED = Path(__file__).with_name(RECORDING)


@pytest.fixture(scope="module")
def answers(app: Flask) -> dict[str, dict[str, object]]:
    """The current answers to every recorded request (written instead when re-recording)."""
    got = replay(app)
    if os.environ.get("RECORD_RESPONSES") == "1":
        RECORDED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return got


def test_every_case_was_recorded(answers: dict[str, dict[str, object]]) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert sorted(recorded) == sorted(c["name"] for c in cases())


@pytest.mark.parametrize("name", [c["name"] for c in cases()])
def test_answer_is_the_recorded_one(name: str, answers: dict[str, dict[str, object]]) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert answers[name] == recorded[name]
