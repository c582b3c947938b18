"""Serving the model repository: every indexed version is loaded, unversioned routes answer with
the current one, versioned routes with the one they name, and the index's sha256 decide what is
trusted. Readiness is per model; a replica that loads nothing stops (gunicorn.conf.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from conftest import seed_bundle
from flask import Flask
from flask.testing import FlaskClient
from model_server.core.bundle import sha256_bytes
from model_server.repository import (
    INDEX_FILE,
    VersionEntry,
    add_version,
    load_index,
    pin_index,
    set_current,
    write_index,
)
from unit_helpers import sample

ROOT = Path(__file__).resolve().parents[2]
QUERY = "pregnant=1&glucose=3&pressure=1"


def add_diabetes_version(repo: Path, version: str, threshold: float) -> None:
    """Version ``version`` of the seed diabetes model: the same estimator, another threshold
    (so the two versions answer differently), indexed beside the others."""
    manifest = json.loads((seed_bundle(repo, "diabetes") / "manifest.json").read_text())
    manifest.update(version=version, threshold=threshold)
    target = repo / "diabetes" / version
    target.mkdir()
    shutil.copy(seed_bundle(repo, "diabetes") / "model.skops", target / "model.skops")
    text = json.dumps(manifest, indent=2).encode()
    (target / "manifest.json").write_bytes(text)
    entry = VersionEntry(manifest["artifact"]["sha256"], sha256_bytes(text))
    write_index(repo, add_version(load_index(repo), "diabetes", version, entry))


@pytest.fixture
def repo(model_dir: Path, tmp_path: Path) -> Path:
    """The seed repository plus diabetes 2.0.0, whose threshold of 0.001 answers "yes"."""
    out = Path(shutil.copytree(model_dir, tmp_path / "models"))
    add_diabetes_version(out, "2.0.0", 0.001)
    return out


@pytest.fixture
def client(make_app: Callable[..., Flask], repo: Path) -> FlaskClient:
    return make_app(model_dir=repo).test_client()


def test_unversioned_routes_answer_with_the_current_version(client: FlaskClient) -> None:
    assert client.get(f"/predict_data?{QUERY}").get_json() == {"Answer": ["no"]}
    answer = client.post("/models/diabetes/predict", json=[[1, 3, 1]]).get_json()
    assert (answer["version"], answer["predictions"]) == ("1.0.0", ["no"])


def test_every_protocol_reaches_a_version_that_is_not_current(client: FlaskClient) -> None:
    base = "/models/diabetes/versions/2.0.0"
    assert client.get(f"{base}/predict_data?{QUERY}").get_json() == {"Answer": ["yes"]}
    own = client.post(f"{base}/predict", json=[[1, 3, 1]]).get_json()
    assert (own["version"], own["predictions"]) == ("2.0.0", ["yes"])
    assert client.get(base).get_json()["version"] == "2.0.0"
    sagemaker = client.post(
        "/invocations",
        data="1,3,1\n",
        content_type="text/csv",
        headers={"X-Amzn-SageMaker-Target-Model": "diabetes/2.0.0"},
    )
    assert sagemaker.get_json()["predictions"] == ["yes"]
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": [1, 3, 1]}
    v2 = client.post("/v2/models/diabetes/versions/2.0.0/infer", json={"inputs": [tensor]})
    assert v2.get_json()["model_version"] == "2.0.0"
    assert v2.get_json()["outputs"][0]["data"] == ["yes"]
    assert client.get("/v2/models/diabetes").get_json()["versions"] == ["1.0.0", "2.0.0"]


@pytest.mark.parametrize("version", ["1.0.0", "2.0.0"])
def test_every_answer_names_the_version_that_produced_it(client: FlaskClient, version: str) -> None:
    """X-Model-Version on every route that resolves a model, its refusals included."""
    base = "/models/diabetes" if version == "1.0.0" else "/models/diabetes/versions/2.0.0"
    v2 = "/v2/models/diabetes" if version == "1.0.0" else "/v2/models/diabetes/versions/2.0.0"
    target = {"X-Amzn-SageMaker-Target-Model": f"diabetes/{version}"}
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 3], "data": [1, 3, 1]}
    answers = {
        "plumber": client.get(f"{base}/predict_data?{QUERY}"),
        "predict": client.post(f"{base}/predict", json=[[1, 3, 1]]),
        "refused": client.post(f"{base}/predict", json=[[1, "x", 1]]),
        "manifest": client.get(base),
        "sagemaker": client.post(
            "/invocations", data="1,3,1\n", content_type="text/csv", headers=target
        ),
        "oip v2": client.post(f"{v2}/infer", json={"inputs": [tensor]}),
        "oip v2 metadata": client.get(v2),
    }
    if version == "1.0.0":  # the routes without a version: the current one answers
        answers["root plumber"] = client.get(f"/predict_data?{QUERY}")
        answers["kserve v1"] = client.post(
            "/v1/models/diabetes:predict", json={"instances": [[1, 3, 1]]}
        )
    assert answers["refused"].status_code == 422
    assert {k: r.headers.get("X-Model-Version") for k, r in answers.items()} == dict.fromkeys(
        answers, version
    )


def test_answers_that_name_no_known_model_carry_no_version(client: FlaskClient) -> None:
    for response in (
        client.get("/healthz"),
        client.get("/models"),
        client.post("/models/nope/predict", json=[[1, 3, 1]]),
        client.post("/models/diabetes/versions/9/predict", json=[[1, 3, 1]]),
    ):
        assert "X-Model-Version" not in response.headers


def test_an_unknown_version_is_a_404_naming_the_versions(client: FlaskClient) -> None:
    response = client.post("/models/diabetes/versions/9/predict", json=[[1, 3, 1]])
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("unknown_model", "version")
    assert "versions: 1.0.0, 2.0.0" in error["message"]


def test_the_model_listing_names_every_version_and_the_current_one(client: FlaskClient) -> None:
    listing = {m["name"]: m for m in client.get("/models").get_json()["models"]}
    assert (listing["diabetes"]["version"], listing["diabetes"]["versions"]) == (
        "1.0.0",
        ["1.0.0", "2.0.0"],
    )


def test_predictions_are_counted_by_version(make_app: Callable[..., Flask], repo: Path) -> None:
    app = make_app(model_dir=repo)
    app.test_client().get(f"/models/diabetes/versions/2.0.0/predict_data?{QUERY}")
    labels = {"model": "diabetes", "version": "2.0.0", "class": "yes"}
    assert sample(app, "modelfleet_predictions_total", labels) == 1
    assert sample(app, "modelfleet_predictions_total", {**labels, "version": "1.0.0"}) == 0
    v2_sha = json.loads((repo / "diabetes" / "2.0.0" / "manifest.json").read_text())["artifact"]
    info = {"model": "diabetes", "version": "2.0.0", "sha256": v2_sha["sha256"], "current": "false"}
    assert sample(app, "modelfleet_model_info", info) == 1


def test_the_current_version_is_the_indexs(make_app: Callable[..., Flask], repo: Path) -> None:
    set_current(repo, "diabetes", "2.0.0")
    client = make_app(model_dir=repo).test_client()
    assert client.get(f"/predict_data?{QUERY}").get_json() == {"Answer": ["yes"]}


def test_an_artifact_and_manifest_replaced_together_are_refused_by_the_index(
    make_app: Callable[..., Flask], repo: Path
) -> None:
    """The manifest next to an artifact vouches for nothing: the index is what is checked."""
    v2 = repo / "diabetes" / "2.0.0"
    manifest = json.loads((v2 / "manifest.json").read_text())
    artifact = (seed_bundle(repo, "boston") / "model.skops").read_bytes()
    manifest["artifact"]["sha256"] = sha256_bytes(artifact)
    (v2 / "model.skops").write_bytes(artifact)
    (v2 / "manifest.json").write_text(json.dumps(manifest, indent=2))
    client = make_app(model_dir=repo).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["failed_models"] == ["diabetes/2.0.0"]
    assert "unready_models" not in ready.get_json()  # the current version is fine
    response = client.post("/models/diabetes/versions/2.0.0/predict", json=[[1, 3, 1]])
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "model_unavailable"
    assert client.get(f"/predict_data?{QUERY}").status_code == 200


def test_a_broken_current_version_makes_only_its_model_unready(
    make_app: Callable[..., Flask], repo: Path
) -> None:
    set_current(repo, "diabetes", "2.0.0")
    (repo / "diabetes" / "2.0.0" / "model.skops").write_bytes(b"not a skops file")
    app = make_app(model_dir=repo)
    ready = app.test_client().get("/readyz").get_json()
    assert (ready["status"], ready["unready_models"]) == ("ready", ["diabetes"])
    assert sample(app, "modelfleet_model_ready", {"model": "diabetes"}) == 0
    assert sample(app, "modelfleet_model_ready", {"model": "boston"}) == 1
    # The version that is not current still loads and is served by name.
    old = app.test_client().get(f"/models/diabetes/versions/1.0.0/predict_data?{QUERY}")
    assert old.get_json() == {"Answer": ["no"]}


def test_a_repository_without_an_index_is_not_ready(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    client = make_app(model_dir=tmp_path).test_client()
    assert client.get("/readyz").status_code == 503


def test_a_pinned_index_stays_what_it_was_when_the_repository_changes(
    make_app: Callable[..., Flask], repo: Path, tmp_path: Path
) -> None:
    pins = tmp_path / "pins"
    pins.mkdir()
    pinned = pin_index(repo, pins)
    set_current(repo, "diabetes", "2.0.0")
    client = make_app(model_dir=repo, index_file=pinned).test_client()
    assert client.get(f"/predict_data?{QUERY}").get_json() == {"Answer": ["no"]}
    assert pin_index(repo, pins) != pinned  # a new pin, the old one kept for its workers
    assert pinned.exists()


def test_pinning_a_repository_without_an_index_names_the_missing_file(tmp_path: Path) -> None:
    assert pin_index(tmp_path, tmp_path) == tmp_path / INDEX_FILE


#: A gunicorn worker's configuration, as far as post_worker_init reads it.
CFG = SimpleNamespace(bind=["127.0.0.1:8000"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_refused(port: int, timeout: float = 10) -> bool:
    """Whether connections to the port are refused within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            pass  # queued while the last descriptor of the socket was being closed
        time.sleep(0.1)
    return False


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, repo: Path) -> ModuleType:
    """gunicorn.conf.py executed as gunicorn does, its pins and environment undone afterwards."""
    monkeypatch.setenv("MODELFLEET_MODEL_DIR", str(repo))
    monkeypatch.setenv("MODELFLEET_PROBE_PORT", str(free_port()))
    monkeypatch.delenv("MODELFLEET_PROBE_FD", raising=False)  # set again by when_ready
    monkeypatch.delenv("MODELFLEET_INDEX_FILE", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(repo.parent))
    path = ROOT / "services" / "model-server" / "gunicorn.conf.py"
    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gunicorn_config_pins_the_index_for_the_workers(
    monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    gunicorn_conf(monkeypatch, repo)
    pinned = Path(os.environ["MODELFLEET_INDEX_FILE"])
    assert pinned.parent == repo.parent
    assert pinned.read_bytes() == (repo / INDEX_FILE).read_bytes()


def test_a_worker_that_loads_no_model_stops_the_replica(
    monkeypatch: pytest.MonkeyPatch,
    make_app: Callable[..., Flask],
    repo: Path,
    tmp_path: Path,
) -> None:
    conf = gunicorn_conf(monkeypatch, repo)
    empty = SimpleNamespace(wsgi=make_app(model_dir=tmp_path))
    with pytest.raises(SystemExit) as stopped:
        conf.post_worker_init(empty)
    assert stopped.value.code == conf.WORKER_BOOT_ERROR == 3
    serving = SimpleNamespace(wsgi=make_app(model_dir=repo), alive=False, cfg=CFG)
    conf.post_worker_init(serving)  # serving: no exit


def test_a_serving_worker_answers_probes_on_their_own_port_while_it_lives(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., Flask], repo: Path
) -> None:
    conf = gunicorn_conf(monkeypatch, repo)
    port = int(os.environ["MODELFLEET_PROBE_PORT"])
    conf.when_ready(SimpleNamespace(cfg=CFG))  # the master opens the probe port
    fd = int(os.environ["MODELFLEET_PROBE_FD"])
    conf.when_ready(SimpleNamespace(cfg=CFG))  # once: not again (a SIGHUP reads the file again)
    assert os.environ["MODELFLEET_PROBE_FD"] == str(fd)
    worker = SimpleNamespace(wsgi=make_app(model_dir=repo), alive=True, cfg=CFG)
    conf.post_worker_init(worker)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        assert r.status == 200
        assert json.loads(r.read())["status"] == "ready"
    worker.alive = False  # gunicorn's flag once the worker is told to stop
    os.close(fd)  # and the master's socket: the replica stops
    assert wait_refused(port), "the probe port stayed open"
