"""``make bench``'s requests: what is sent, to which apps, and how each answer is checked.

Features and training files come from the bundles' manifests (:mod:`bench.models`); only the
single row's values (1, 3, 1: answered "no") are written here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import BenchError, generic, models
from bench.procs import urlopen

BATCH_ROWS = 10_000
#: Batches of these models are measured; they are also the linear ones of the rows/s target.
BATCH_MODELS = ("diabetes", "boston")
#: The single row sent to the default model (its features from the manifest, in order).
SINGLE_VALUES = (1, 3, 1)
ALL_APPS = ("server", "constant", "naive")


@dataclass(frozen=True)
class Scenario:
    """One kind of request, sent by wrk to every app in ``apps``."""

    name: str
    method: str
    path: str
    rows: int
    apps: tuple[str, ...]
    body: bytes | None = None
    content_type: str = "application/json"
    model: str = "diabetes"
    single: bool = False
    check: Callable[[Any], str | None] = field(default=lambda _: None, compare=False)


def answer_no(body: Any) -> str | None:
    """None when the answer (plumber ``Answer`` or JSON ``predictions``) is ``["no"]``."""
    answers = body.get("Answer", body.get("predictions"))
    return None if answers == ["no"] else f"expected the answer ['no'], got {body!r:.200}"


def rows_check(n: int) -> Callable[[Any], str | None]:
    """A check that the answer holds ``n`` predictions."""

    def check(body: Any) -> str | None:
        got = len(body.get("predictions", []))
        return None if got == n else f"expected {n} predictions, got {got}"

    return check


def answer_is(label: str) -> Callable[[Any], str | None]:
    """A check that the one answer (plumber ``Answer`` or JSON ``predictions``) is ``label``."""

    def check(body: Any) -> str | None:
        answers = body.get("Answer", body.get("predictions"))
        return None if answers == [label] else f"expected [{label!r}], got {body!r:.200}"

    return check


def generic_scenarios(model_dir: Path) -> list[Scenario]:
    """The generic model's one-row requests (server only), when the repository holds it
    (``bench.generic.prepare``): a JSON record, and the plumber query with the string in it."""
    try:
        names = models.features(generic.NAME, model_dir)
    except BenchError:
        return []
    record = {k: generic.RECORD[k] for k in names}
    check = answer_is(generic.ANSWER)
    return [
        Scenario(
            generic.GENERIC_SINGLE["POST"],
            "POST",
            f"/models/{generic.NAME}/predict",
            1,
            ("server",),
            body=json.dumps(record).encode(),
            model=generic.NAME,
            check=check,
        ),
        Scenario(
            generic.GENERIC_SINGLE["GET"],
            "GET",
            f"/models/{generic.NAME}/predict_data?{urllib.parse.urlencode(record)}",
            1,
            ("server",),
            model=generic.NAME,
            check=check,
        ),
    ]


def csv_body(rows: list[dict[str, Any]], feature_names: tuple[str, ...]) -> bytes:
    """CSV with a header line."""
    lines = [",".join(feature_names)]
    lines += [",".join(str(r[k]) for k in feature_names) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def scenarios(model_dir: Path = models.MODELS, data_dir: Path = models.DATA) -> list[Scenario]:
    """The measured requests: single rows on all three apps, 10,000-row batches, and the
    generic model's single rows on the server when the repository holds it."""
    single = models.record(models.features("diabetes", model_dir), SINGLE_VALUES)
    out = [
        Scenario(
            "single GET /predict_data",
            "GET",
            f"/predict_data?{models.query(single)}",
            1,
            ALL_APPS,
            single=True,
            check=answer_no,
        ),
        Scenario(
            "single POST json",
            "POST",
            "/models/diabetes/predict",
            1,
            ALL_APPS,
            body=json.dumps(single).encode(),
            single=True,
            check=answer_no,
        ),
    ]
    for model in BATCH_MODELS:
        names = models.features(model, model_dir)
        file = models.training_file(model, model_dir)
        rows = models.data_rows(file, names, BATCH_ROWS, data_dir)
        arrays = [[r[k] for k in names] for r in rows]
        for fmt, body, ctype in (
            ("json", json.dumps(rows, separators=(",", ":")).encode(), "application/json"),
            ("rows", json.dumps(arrays, separators=(",", ":")).encode(), "application/json"),
            ("csv", csv_body(rows, names), "text/csv"),
        ):
            out.append(
                Scenario(
                    f"batch {model} {fmt} 10k",
                    "POST",
                    f"/models/{model}/predict",
                    BATCH_ROWS,
                    ("server", "naive"),
                    body=body,
                    content_type=ctype,
                    model=model,
                    check=rows_check(BATCH_ROWS),
                )
            )
    return out + generic_scenarios(model_dir)


def select(scs: list[Scenario], only: str) -> list[Scenario]:
    """The scenarios whose name contains one of the comma-separated filters (all for "")."""
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    return [s for s in scs if any(w in s.name for w in wanted)] if wanted else scs


def request(url: str, sc: Scenario) -> tuple[int, Any]:
    """One request of the scenario: (status, decoded JSON body or the error body's start)."""
    req = urllib.request.Request(url, data=sc.body, method=sc.method)
    if sc.body is not None:
        req.add_header("Content-Type", sc.content_type)
    try:
        with urlopen(req, timeout=30) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def agree(a: list[Any], b: list[Any]) -> bool:
    """Two apps' predictions are the same: labels equal, regression values within 1e-9."""
    if len(a) != len(b):
        return False
    if all(isinstance(x, int | float) for x in (*a, *b)):
        return all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))
    return a == b


def check_scenario(sc: Scenario, urls: dict[str, str]) -> None:
    """One request per app before measuring: status 200, expected answer, apps agree."""
    answers = {}
    for app, base in urls.items():
        status, body = request(base + sc.path, sc)
        if status != 200:
            raise BenchError(f"{sc.name} on {app}: HTTP {status}: {body!r}")
        problem = sc.check(body)
        if problem:
            raise BenchError(f"{sc.name} on {app}: {problem}")
        answers[app] = body.get("predictions", body.get("Answer"))
    both = "naive" in answers and "server" in answers
    if both and sc.rows > 1 and not agree(answers["server"], answers["naive"]):
        raise BenchError(f"{sc.name}: the server and the naive port disagree")
