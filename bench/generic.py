"""``make bench``'s generic model: a scikit-learn Pipeline the seed models are not, packaged the
way an operator packages their own (``model_server.package.package``), and what it costs.

The model, ``parcels`` 1.0.0: a ``ColumnTransformer`` (``OneHotEncoder`` on the string column
``color``, ``StandardScaler`` on ``weight`` and ``distance``) and a ``LogisticRegression``,
fitted on a small synthetic DataFrame with a fixed seed, so every run serves the same model.

``prepare`` writes a repository for the bench (a copy of the seed repository plus ``parcels``)
into a directory the caller owns (``make bench``: a temporary directory under ``build/``,
removed afterwards); the committed ``models/`` is only read. ``in_process_us`` times the
estimator's own ``predict`` + ``predict_proba`` on a one-row DataFrame, the cost a server cannot
go below, and ``summary`` sets the server's measured figures against it and against the
server's own single-row diabetes request.
"""

from __future__ import annotations

import shutil
import sys
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT

SERVER_DIR = ROOT / "services" / "model-server"
NAME = "parcels"
VERSION = "1.0.0"
SEED = 20240611
ROWS = 300
COLORS = ("red", "green", "blue", "white")
#: The one record the bench sends (and times in process), and the model's answer to it.
RECORD: dict[str, Any] = {"color": "blue", "weight": 2.5, "distance": 120.0}
ANSWER = "express"
#: The server's single-row diabetes request the generic one is compared with (bench.scenarios).
DIABETES_SINGLE = {"POST": "single POST json", "GET": "single GET /predict_data"}
GENERIC_SINGLE = {"POST": "generic parcels POST json", "GET": "generic parcels GET query"}


def import_model_server() -> None:
    """Make ``model_server`` importable (the bench runs from the repository root)."""
    if str(SERVER_DIR) not in sys.path:
        sys.path.insert(0, str(SERVER_DIR))


def frame(rows: int = ROWS, seed: int = SEED) -> Any:
    """The synthetic training frame: color (str), weight, distance and the target ``service``
    ("express" for light, near or red parcels, else "standard"; 5% of labels flipped)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "color": rng.choice(COLORS, rows),
            "weight": rng.uniform(0.1, 30.0, rows).round(2),
            "distance": rng.uniform(1.0, 900.0, rows).round(1),
        }
    )
    score = 2.0 - df["weight"] / 10 - df["distance"] / 400 + (df["color"] == "red") * 1.5
    express = (score > 0) ^ (rng.random(rows) < 0.05)
    df["service"] = np.where(express, "express", "standard")
    return df


def fit(df: Any) -> Any:
    """The Pipeline (ColumnTransformer + LogisticRegression), fitted on ``df``'s features."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("color", OneHotEncoder(handle_unknown="ignore"), ["color"]),
            ("numbers", StandardScaler(), ["weight", "distance"]),
        ]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])
    return model.fit(df.drop(columns="service"), df["service"])


def copy_repository(seed: Path, dest: Path) -> Path:
    """A copy of the repository ``seed`` at ``dest`` (which must not exist): ``index.json`` and
    the bundle directories, without lock files and temporaries (dot files)."""
    shutil.copytree(seed, dest, ignore=shutil.ignore_patterns(".*"))
    return dest


@dataclass(frozen=True)
class Generic:
    """The prepared repository, and the fitted estimator it serves as ``parcels``."""

    repository: Path
    estimator: Any
    record: dict[str, Any]


def prepare(seed: Path, dest: Path) -> Generic:
    """Copy the repository ``seed`` to ``dest`` and package ``parcels`` into the copy."""
    import_model_server()
    from model_server.package import package

    copy_repository(seed, dest)
    df = frame()
    estimator = fit(df)
    package(
        estimator,
        df,
        NAME,
        VERSION,
        repository=dest,
        target="service",
        description="bench: synthetic parcels, ColumnTransformer + LogisticRegression",
        warn=lambda _: None,
    )
    return Generic(dest, estimator, dict(RECORD))


def in_process_us(estimator: Any, record: dict[str, Any], seconds: float = 1.0) -> dict[str, float]:
    """µs per call of the estimator's own ``predict`` + ``predict_proba`` on a one-row
    DataFrame: ``calls`` (the frame built once) and ``with_frame`` (built per call, as a naive
    port does); the best of 5 repeats each, about ``seconds`` in all."""
    import pandas as pd

    one = pd.DataFrame([record])

    def calls() -> None:
        estimator.predict(one)
        estimator.predict_proba(one)

    def with_frame() -> None:
        x = pd.DataFrame([record])
        estimator.predict(x)
        estimator.predict_proba(x)

    out = {}
    for name, fn in (("calls", calls), ("with_frame", with_frame)):
        timer = timeit.Timer(fn)
        n, taken = timer.autorange()
        number = max(1, int(n * seconds / 10 / max(taken, 1e-9)))
        out[name] = min(timer.repeat(5, number)) / number * 1e6
    return out


def summary(
    results: list[dict[str, Any]], in_process: dict[str, float] | None
) -> list[dict[str, Any]]:
    """Each measured generic request on the host server against the server's single-row
    diabetes request of the same method (ratio of requests/s) and against the in-process
    estimator call (its share of the server's CPU time and of its wall time per request,
    ``1e6 / req/s`` with the run's connections sharing the server's CPUs)."""
    by = {r["scenario"]: r for r in results if r["where"] == "host" and r["app"] == "server"}
    out = []
    for method, scenario in GENERIC_SINGLE.items():
        r = by.get(scenario)
        if r is None or not r["rps"]:
            continue
        base = by.get(DIABETES_SINGLE[method])
        wall_us = 1e6 / r["rps"]
        cpu_us = r["cpu_us_per_request"]
        calls_us = (in_process or {}).get("calls")
        out.append(
            {
                "scenario": scenario,
                "rps": r["rps"],
                "valid": r["valid"],
                "server_us_per_request": wall_us,
                "server_cpu_us_per_request": cpu_us,
                "diabetes_scenario": base["scenario"] if base else None,
                "diabetes_rps": base["rps"] if base else None,
                "vs_diabetes": r["rps"] / base["rps"] if base and base["rps"] else None,
                "in_process_share_of_cpu": calls_us / cpu_us if calls_us and cpu_us else None,
                "in_process_share_of_wall": calls_us / wall_us if calls_us else None,
            }
        )
    return out


def _pct(x: float | None) -> str:
    return f"{x:.0%}" if x is not None else "-"


def lines(rows: list[dict[str, Any]], in_process: dict[str, float] | None) -> list[str]:
    """The generic model's lines under ``make bench``'s table."""
    out = [
        "",
        f"Generic model {NAME} {VERSION} (Pipeline: ColumnTransformer with OneHotEncoder and "
        "StandardScaler, LogisticRegression), one row, host server:",
    ]
    for r in rows:
        vs = (
            f"{r['vs_diabetes']:.2f}x {r['diabetes_scenario']} ({r['diabetes_rps']:.1f} req/s)"
            if r["vs_diabetes"] is not None
            else "diabetes single row not measured"
        )
        cpu = r["server_cpu_us_per_request"]
        cpu_text = f"{cpu:.0f} us CPU" if cpu is not None else "CPU -"
        out.append(
            f"  {r['scenario']:26s} {r['rps']:9.1f} req/s = {vs}; per request "
            f"{r['server_us_per_request']:.0f} us wall, {cpu_text}"
            + ("" if r["valid"] else "  INVALID: errors")
        )
    if in_process:
        out.append(
            f"  in process, estimator.predict + predict_proba on a one-row DataFrame: "
            f"{in_process['calls']:.0f} us/call ({in_process['with_frame']:.0f} us with the "
            "DataFrame built per call)"
        )
        for r in rows:
            out.append(
                f"    = {_pct(r['in_process_share_of_cpu'])} of the server's CPU time and "
                f"{_pct(r['in_process_share_of_wall'])} of its wall time per request "
                f"({r['scenario']})"
            )
    return out
