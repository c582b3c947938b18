"""The public OpenAPI document is true of what the load balancer serves (schemathesis, all of it).

schemathesis' CLI loads ``<lb>/openapi.json`` and runs every phase (examples, coverage,
fuzzing, stateful: following the document's links) with every check against the load
balancer: the real nginx tiers in front of the real replicas. A documented route the LB does
not serve, a request the document calls valid that is refused, or one it calls invalid that is
accepted, is a failure; the test asserts there are none.

Bounded: a fixed seed and a small ``--max-examples`` per operation and phase, one worker.
``tests/openapi_hooks.py`` teaches the generator what JSON Schema cannot say (the documents'
descriptions say it too): a tensor's shape counts its data's rows, and a SageMaker body is the
model's the target-model header names.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.stack.stackctl import Stack

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 8
SEED = 20260109


def test_public_document_is_true_of_the_load_balancer(stack: Stack, tmp_path: Path) -> None:
    spec = requests.get(stack.lb_url + "/openapi.json", timeout=10).json()
    # The replicas' internals are not served by the LB, so the public document leaves them out.
    for internal in ("/metrics", "/healthz", "/readyz", "/openapi.internal.json"):
        assert internal not in spec["paths"]
        assert requests.get(stack.lb_url + internal, timeout=10).status_code == 404
    started = time.monotonic()
    run = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(ROOT / "tests" / "schemathesis.toml"),
            "run",
            stack.lb_url + "/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.openapi_hooks", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,  # schemathesis writes its .schemathesis/ cache into the working directory
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    out = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(out)
    wanted = re.compile(r"(?i)selected:|tested:|generated|passed|failed|failures|errors")
    summary = "\n".join(line for line in out.splitlines() if wanted.search(line))
    print(f"\nschemathesis through the LB in {elapsed:.0f} s:\n{summary}")
    assert run.returncode == 0, f"{tmp_path / 'schemathesis.log'}:\n{out[-20000:]}"
    # Every operation was tested, but the one serving the document schemathesis loaded
    # (GET /openapi.json), which it leaves out of the run.
    selected = re.search(r"Selected: (\d+)/(\d+)", out)
    tested = re.search(r"Tested: (\d+)", out)
    assert selected and tested, summary
    counts = {int(selected.group(1)), int(selected.group(2)), int(tested.group(1))}
    assert counts == {len(_operations(spec)) - 1}, summary
    assert re.search(r"(\d+) generated, \1 passed", out), summary


def _operations(spec: dict[str, object]) -> list[tuple[str, str]]:
    """Every (method, path) the document describes."""
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return [(method, path) for path, ops in paths.items() for method in ops]
