"""Candidate versions of the default model for the rollout stack tests: packaged into the
stack's repository with `make model-package`, rolled out under load, and the versions answering
through the load balancer after."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from tests.stack.stackctl import Load, Stack

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["pregnant", "glucose", "pressure"]
SEED = "1.0.0"
PLUMBER = "/predict_data?pregnant=1&glucose=3&pressure=1"


def package(stack: Stack, work: Path, version: str, swap: bool = False) -> None:
    """`make model-package` a diabetes logistic regression as ``version``: the seed model
    refitted; ``swap``: with its labels swapped (it answers the opposite class)."""
    pima = pd.read_csv(ROOT / "data" / "pima_indians_diabetes.csv")
    positive = (pima["diabetes"] == "pos") != swap
    sample = pima[FEATURES].assign(diabetes=np.where(positive, "yes", "no"))
    estimator = LogisticRegression(max_iter=10_000).fit(sample[FEATURES], sample["diabetes"])
    sio.dump(estimator, work / f"{version}.skops")
    sample.to_csv(work / f"{version}.csv", index=False)
    packaged = stack.make(
        "model-package",
        f"ESTIMATOR={work / f'{version}.skops'}",
        f"SAMPLE={work / f'{version}.csv'}",
        "NAME=diabetes",
        f"VERSION={version}",
        "TARGET=diabetes",
    )
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr


def versions_answering(stack: Stack, n: int = 30) -> set[str]:
    """The X-Model-Version of ``n`` plumber answers through the load balancer."""
    answers = [requests.get(stack.lb_url + PLUMBER, timeout=10) for _ in range(n)]
    assert {a.status_code for a in answers} == {200}
    return {a.headers["X-Model-Version"] for a in answers}


@dataclass(frozen=True)
class Rollout:
    """A `make rollout` of diabetes under load: make's result, the load, and the versions
    answering right after."""

    version: str
    made: subprocess.CompletedProcess[str]
    load: Load
    after: set[str]

    def failed_verdict(self) -> str:
        """The one verdict line of a rollout that failed (exit status 1, as make reports it)."""
        made = self.made
        assert "rollout] Error 1" in made.stderr, made.stdout + made.stderr
        prefix = f"rollout diabetes {self.version}: FAILED"
        (verdict,) = [line for line in made.stderr.splitlines() if line.startswith(prefix)]
        return verdict


def rollout_under_load(stack: Stack, version: str, *settings: str) -> Rollout:
    """`make rollout NAME=diabetes VERSION=<version> <settings>` while four client threads send
    plumber GETs through the load balancer (bounded: 200,000 requests, 240 s)."""
    with Load(stack.lb_url, threads=4, max_requests=200_000, max_seconds=240) as load:
        made = stack.make("rollout", "NAME=diabetes", f"VERSION={version}", *settings)
    return Rollout(version, made, load, versions_answering(stack))
