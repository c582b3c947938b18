"""bench.models: features come from the models' own metadata, never from the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import BenchError, models
from tests.unit.bench_http import serve


def bundle(model_dir: Path, name: str, features: list[object], file: str = "t.csv") -> None:
    (model_dir / name / "2").mkdir(parents=True)
    manifest = {"name": name, "features": features, "training_data": {"file": file}}
    (model_dir / name / "2" / "manifest.json").write_text(json.dumps(manifest))
    index_file = model_dir / "index.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {"models": {}}
    index["models"][name] = {"current": "2"}
    index_file.write_text(json.dumps(index))


def test_features_are_the_manifests_in_its_order_whether_objects_or_names(tmp_path: Path) -> None:
    bundle(tmp_path, "m", [{"name": "zeta", "type": "integer"}, {"name": "alpha"}])
    bundle(tmp_path, "n", ["x", "y"])
    assert models.features("m", tmp_path) == ("zeta", "alpha")
    assert models.features("n", tmp_path) == ("x", "y")
    assert models.training_file("m", tmp_path) == "t.csv"


def test_the_trained_seed_bundles_name_their_features(model_dir: Path) -> None:
    assert models.features("diabetes", model_dir) == ("pregnant", "glucose", "pressure")
    assert len(models.features("diabetes-gbt", model_dir)) == 8
    assert models.training_file("boston", model_dir) == "boston_housing.csv"


def test_a_missing_model_names_the_repository(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"no model 'diabetes' in the repository .*"):
        models.features("diabetes", tmp_path)


def test_a_record_pairs_values_with_features_and_refuses_a_different_count() -> None:
    assert models.record(("a", "b"), (1, 2.5)) == {"a": 1, "b": 2.5}
    with pytest.raises(BenchError, match=r"3 values for 2 features \(a, b\)"):
        models.record(("a", "b"), (1, 2, 3))


def test_the_plumber_query_keeps_the_records_order() -> None:
    assert models.query({"b": 1, "a": 0.5}) == "b=1&a=0.5"


@pytest.mark.parametrize(("text", "value"), [("6", 6), ("6.0", 6.0), ("0.627", 0.627), ("-2", -2)])
def test_a_csv_cell_becomes_the_number_it_writes(text: str, value: float) -> None:
    got = models.number(text)
    assert got == value and type(got) is type(value)


def test_data_rows_are_the_files_rows_restricted_to_the_features_and_cycled(
    tmp_path: Path,
) -> None:
    (tmp_path / "t.csv").write_text("a,b,c\n1,2.5,x\n3,4,y\n")
    rows = models.data_rows("t.csv", ("b", "a"), 3, tmp_path)
    assert rows == [{"b": 2.5, "a": 1}, {"b": 4, "a": 3}, {"b": 2.5, "a": 1}]


LISTING = {
    "default_model": "second",
    "models": [
        {"name": "first", "features": ["p", "q"]},
        {"name": "second", "features": ["u", "v", "w"]},
    ],
}


def test_a_running_servers_models_and_features_come_from_get_models() -> None:
    with serve({"/models": (200, LISTING)}) as (url, _):
        assert models.served_features(url + "/") == {"first": ("p", "q"), "second": ("u", "v", "w")}


def test_the_plumber_path_names_the_default_models_features() -> None:
    with serve({"/models": (200, LISTING)}) as (url, _):
        assert models.plumber_path(url) == "/predict_data?u=1&v=3&w=1"
        assert models.plumber_path(url, ("x", 0, 0)) == "/predict_data?u=x&v=0&w=0"
