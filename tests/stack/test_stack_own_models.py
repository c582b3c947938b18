"""Serve your own model: the README's three commands on a running stack.

A model the stack has never seen (a Pipeline with a ColumnTransformer: a string column one-hot
encoded, numeric columns scaled, a three-class logistic regression, fitted here on a pandas
DataFrame) is packaged into the stack's model repository with `make model-package`, rolled out
under load with `make rollout`, and then answers exactly what the estimator itself answers,
through the load balancer, on every protocol. The repository is restored afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.stack.stackctl import Load, Stack

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
NAME, VERSION = "parcels", "1.0.0"
COLORS = ("red", "green", "blue")


def fit() -> tuple[Pipeline, pd.DataFrame]:
    """The never-seen model and a sample of its input (with the target column ``speed``)."""
    rng = np.random.default_rng(11)
    n = 300
    frame = pd.DataFrame(
        {
            "color": rng.choice(COLORS, n),
            "weight": rng.uniform(0.1, 30.0, n).round(3),
            "distance": rng.uniform(1.0, 900.0, n).round(1),
        }
    )
    score = frame["weight"] / 10 + frame["distance"] / 300 + (frame["color"] == "red") * 1.5
    speed = np.select([score < 2, score < 3.5], ["express", "standard"], "economy")
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("color", OneHotEncoder(), ["color"]),
                        ("numbers", StandardScaler(), ["weight", "distance"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    ).fit(frame, speed)
    return pipeline, frame.assign(speed=speed)


@pytest.fixture(scope="module")
def own_model(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, pd.DataFrame, Load, str]]:
    """The model packaged and rolled out under load; the repository restored afterwards."""
    work = tmp_path_factory.mktemp("own-model")
    estimator, sample = fit()
    sio.dump(estimator, work / "parcels.skops")
    sample.to_csv(work / "parcels.csv", index=False)
    index = stack.repository / "index.json"
    original = index.read_bytes()
    try:
        packaged = stack.make(
            "model-package",
            f"ESTIMATOR={work / 'parcels.skops'}",
            f"SAMPLE={work / 'parcels.csv'}",
            f"NAME={NAME}",
            f"VERSION={VERSION}",
            "TARGET=speed",
        )
        assert packaged.returncode == 0, packaged.stdout + packaged.stderr
        with Load(stack.lb_url, threads=4, max_requests=100_000, max_seconds=180) as load:
            rolled = stack.make("rollout", f"NAME={NAME}", f"VERSION={VERSION}")
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        yield estimator, sample.drop(columns="speed"), load, packaged.stdout + rolled.stdout
    finally:
        # Back to the seed repository on every replica: the index as it was, then a rollout of
        # a seed model's current version, which makes every replica pin the index again.
        index.write_bytes(original)
        restored = stack.make("rollout", "NAME=diabetes", "VERSION=1.0.0")
        assert restored.returncode == 0, restored.stdout + restored.stderr


@pytest.fixture(scope="module")
def rows(own_model: tuple[Pipeline, pd.DataFrame, Load, str]) -> pd.DataFrame:
    """Rows the server has not seen either: every color, numbers inside the sample's range."""
    return own_model[1].sample(12, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(own_model: tuple[Pipeline, pd.DataFrame, Load, str], rows: pd.DataFrame) -> Any:
    estimator = own_model[0]
    return estimator.predict(rows).tolist(), estimator.predict_proba(rows).tolist()


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v if isinstance(v, str) else float(v)) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]


def test_packaging_and_the_rollout_printed_what_they_did(
    own_model: tuple[Pipeline, pd.DataFrame, Load, str],
) -> None:
    output = own_model[3]
    assert f"packaged {NAME} {VERSION} into" in output
    assert "verified: the server's loader and predictor give the estimator's own outputs" in output
    assert f"rollout {NAME} {VERSION}: OK on 3 replicas" in output


def test_the_rollout_under_load_failed_no_request(
    own_model: tuple[Pipeline, pd.DataFrame, Load, str],
) -> None:
    load = own_model[2].result
    assert load.ok > 100
    assert load.failed == 0, dict(load.failures)


def test_every_replica_serves_the_new_model(stack: Stack, own_model: object) -> None:
    answers = [requests.get(f"{stack.lb_url}/models/{NAME}", timeout=10) for _ in range(12)]
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["version"] for a in answers} == {VERSION}
    # Through the load balancer, every answer names its version in a header too.
    assert {a.headers["X-Model-Version"] for a in answers} == {VERSION}
    listing = requests.get(f"{stack.lb_url}/models", timeout=10).json()
    assert {"name": NAME, "versions": [VERSION]}.items() <= next(
        m for m in listing["models"] if m["name"] == NAME
    ).items()


def test_plumber_get_with_strings_in_the_query(
    stack: Stack, rows: pd.DataFrame, expected: Any
) -> None:
    answers = []
    for record in records(rows):
        query = "&".join(
            f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}" for k, v in record.items()
        )
        for path in (f"/models/{NAME}", f"/models/{NAME}/versions/{VERSION}"):
            r = requests.get(f"{stack.lb_url}{path}/predict_data?{query}", timeout=10)
            assert r.status_code == 200, r.text
            assert r.headers["X-Model-Version"] == VERSION
            answers.append(r.json()["Answer"][0])
    assert answers == [a for a in expected[0] for _ in range(2)]


@pytest.mark.parametrize("path", [f"/models/{NAME}", f"/models/{NAME}/versions/{VERSION}"])
def test_own_json_records_answer_labels_and_per_class_probabilities(
    stack: Stack, rows: pd.DataFrame, expected: Any, path: str
) -> None:
    answer = requests.post(f"{stack.lb_url}{path}/predict", json=records(rows), timeout=10).json()
    assert (answer["model"], answer["version"]) == (NAME, VERSION)
    assert answer["predictions"] == expected[0]
    classes = sorted(set(expected[0]) | {"economy", "express", "standard"})
    probabilities = [[p[c] for c in classes] for p in answer["probabilities"]]
    assert probabilities == expected[1]


def test_own_csv(stack: Stack, rows: pd.DataFrame, expected: Any) -> None:
    body = rows.to_csv(index=False)
    r = requests.post(
        f"{stack.lb_url}/models/{NAME}/predict",
        data=body,
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert r.json()["predictions"] == expected[0]


@pytest.mark.parametrize("target", [NAME, f"{NAME}/{VERSION}"])
def test_sagemaker_and_mlflow_invocations(
    stack: Stack, rows: pd.DataFrame, expected: Any, target: str
) -> None:
    header = {"X-Amzn-SageMaker-Target-Model": target}
    out = io.StringIO()
    csv.writer(out).writerows(rows.itertuples(index=False))
    sagemaker = requests.post(
        f"{stack.lb_url}/invocations",
        data=out.getvalue(),
        headers={**header, "Content-Type": "text/csv"},
        timeout=10,
    )
    assert sagemaker.json()["predictions"] == expected[0]
    split = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    mlflow = requests.post(f"{stack.lb_url}/invocations", json=split, headers=header, timeout=10)
    assert mlflow.json()["predictions"] == expected[0]


def test_kserve_v1(stack: Stack, rows: pd.DataFrame, expected: Any) -> None:
    body = {"instances": records(rows)}
    answer = requests.post(f"{stack.lb_url}/v1/models/{NAME}:predict", json=body, timeout=10)
    assert answer.json()["predictions"] == expected[0]


def test_oip_v2_with_the_official_triton_and_kserve_clients(
    stack: Stack, rows: pd.DataFrame, expected: Any
) -> None:
    """BYTES tensors for the string feature, built by the clients from the model's metadata."""
    if not CLIENTS_PYTHON.exists():
        pytest.fail("the official clients are not installed: run `make clients`")
    proc = subprocess.run(
        [str(CLIENTS_PYTHON), str(ROOT / "tests" / "stack" / "official_clients.py"),
         stack.lb_url, NAME, json.dumps(records(rows))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    datatypes = {i["name"]: i["datatype"] for i in result["metadata"]["inputs"]}
    assert datatypes == {"color": "BYTES", "weight": "FP64", "distance": "FP64"}
    for client in ("triton", "kserve"):
        assert result[client]["predict"] == expected[0]
        flat = [p for row in expected[1] for p in row]
        assert result[client]["probabilities"] == flat


def test_make_rollback_returns_to_the_version_the_model_came_from(
    stack: Stack, own_model: tuple[Pipeline, pd.DataFrame, Load, str], tmp_path: Path
) -> None:
    """1.0.1 (the same estimator) rolled out, then `make rollback`: 1.0.0 answers again, and
    the history beside the repository says both."""
    estimator, features = own_model[0], own_model[1]
    sio.dump(estimator, tmp_path / "parcels.skops")
    features.to_csv(tmp_path / "parcels.csv", index=False)
    packaged = stack.make(
        "model-package",
        f"ESTIMATOR={tmp_path / 'parcels.skops'}",
        f"SAMPLE={tmp_path / 'parcels.csv'}",
        f"NAME={NAME}",
        "VERSION=1.0.1",
    )
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    # No traffic here for gates to judge by (test_stack_rollout_gates.py bakes on live traffic).
    rolled = stack.make("rollout", f"NAME={NAME}", "VERSION=1.0.1", "ROLLOUT_BAKE=0")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    back = stack.make("rollback", f"NAME={NAME}", "ROLLOUT_BAKE=0")
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"rollback {NAME} {VERSION}: OK on 3 replicas" in back.stdout
    answers = [requests.get(f"{stack.lb_url}/models/{NAME}", timeout=10) for _ in range(12)]
    assert {a.headers["X-Model-Version"] for a in answers} == {VERSION}
    lines = (stack.repository / "rollouts.jsonl").read_text().splitlines()
    history = [(h["action"], h["from"], h["to"], h["outcome"]) for h in map(json.loads, lines)]
    assert history[-2:] == [
        ("rollout", VERSION, "1.0.1", "OK"),
        ("rollback", "1.0.1", VERSION, "OK"),
    ]
