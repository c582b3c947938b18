"""bench.generic and make bench's generic model: the repository it serves, its requests, and the
figures set against the server's own single row and the in-process estimator (no timing
thresholds: only the arithmetic and the plumbing are asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench import generic, scenarios
from bench.run import lb_scenarios, parse_args, wants_generic
from tests.unit.bench_http import fake_wrk, run_bench


@pytest.fixture(scope="module")
def prepared(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> generic.Generic:
    """The seed repository copied and ``parcels`` packaged into the copy (a few seconds)."""
    return generic.prepare(model_dir, tmp_path_factory.mktemp("bench") / "models")


def index(repo: Path) -> dict[str, Any]:
    return dict(json.loads((repo / "index.json").read_text()))


def test_the_training_frame_is_fixed_by_its_seed_and_has_both_answers() -> None:
    a, b = generic.frame(), generic.frame()
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["color", "weight", "distance", "service"]
    assert len(a) == generic.ROWS and set(a["color"]) == set(generic.COLORS)
    assert set(a["service"]) == {"express", "standard"}
    assert not generic.frame(seed=1).equals(a)


def test_the_copy_leaves_out_lock_files_and_temporaries_and_the_seed_alone(
    model_dir: Path, tmp_path: Path
) -> None:
    seed = tmp_path / "seed"
    generic.copy_repository(model_dir, seed)
    (seed / ".index.lock").write_text("")
    (seed / ".tmp-half").mkdir()
    copy = generic.copy_repository(seed, tmp_path / "copy")
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        p.name for p in seed.iterdir() if not p.name.startswith(".")
    )
    assert index(copy) == index(seed)


def test_the_generic_model_is_packaged_into_the_copy_only(
    model_dir: Path, prepared: generic.Generic
) -> None:
    seed, copy = index(model_dir), index(prepared.repository)
    assert set(copy["models"]) == {*seed["models"], "parcels"}
    assert copy["models"]["parcels"]["current"] == "1.0.0"
    assert "parcels" not in seed["models"] and not (model_dir / "parcels").exists()
    manifest = json.loads((prepared.repository / "parcels/1.0.0/manifest.json").read_text())
    assert [f["name"] for f in manifest["features"]] == ["color", "weight", "distance"]
    assert manifest["features"][0]["type"] == "string"
    one = pd.DataFrame([prepared.record])
    assert prepared.estimator.predict(one).tolist() == [generic.ANSWER]


def test_the_generic_requests_are_measured_on_the_server_only_never_via_the_lb(
    model_dir: Path, prepared: generic.Generic
) -> None:
    assert scenarios.generic_scenarios(model_dir) == []
    scs = {s.name: s for s in scenarios.scenarios(prepared.repository)}
    post, get = scs["generic parcels POST json"], scs["generic parcels GET query"]
    assert list(scs)[-2:] == [post.name, get.name]
    assert post.path == "/models/parcels/predict" and post.apps == ("server",)
    assert json.loads(post.body or b"") == {"color": "blue", "weight": 2.5, "distance": 120.0}
    assert get.path == "/models/parcels/predict_data?color=blue&weight=2.5&distance=120.0"
    assert not post.single and not get.single and post.rows == get.rows == 1
    assert post.check({"predictions": ["express"]}) is None
    assert "expected ['express']" in (get.check({"Answer": ["standard"]}) or "")
    lb = [s.name for s in lb_scenarios(list(scs.values()))]
    assert lb == ["single GET /predict_data", "single POST json", "batch diabetes json 10k"]


def test_the_generic_model_is_measured_unless_switched_off_or_filtered_out() -> None:
    assert wants_generic(parse_args(["--only", ""]))
    assert wants_generic(parse_args(["--only", "single,parcels GET"]))
    assert not wants_generic(parse_args(["--only", "single GET,diabetes csv"]))
    assert not wants_generic(parse_args(["--only", "", "--generic", "off"]))


class Constant:
    """An estimator stand-in that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, x: pd.DataFrame) -> list[str]:
        self.calls += 1
        return ["express"] * len(x)

    def predict_proba(self, x: pd.DataFrame) -> list[list[float]]:
        return [[1.0, 0.0]] * len(x)


def test_the_in_process_timing_calls_the_estimator_and_gives_microseconds_per_call() -> None:
    est = Constant()
    us = generic.in_process_us(est, generic.RECORD, seconds=0.05)
    assert set(us) == {"calls", "with_frame"} and all(v > 0 for v in us.values())
    assert est.calls > 10


def result(scenario: str, rps: float, cpu: float | None, valid: bool = True) -> dict[str, Any]:
    return {
        "where": "host", "scenario": scenario, "app": "server", "rps": rps,
        "cpu_us_per_request": cpu, "valid": valid,
    }  # fmt: skip


def test_the_generic_figures_are_ratios_to_the_diabetes_row_and_shares_of_the_request() -> None:
    results = [
        result("single POST json", 2000, 400),
        result("single GET /predict_data", 2500, None),
        result("generic parcels POST json", 500, 1600),
        result("generic parcels GET query", 400, None, valid=False),
        {**result("generic parcels POST json", 9999, 1), "where": "lb"},
        {**result("single POST json", 9999, 1), "app": "naive"},
    ]
    rows = generic.summary(results, {"calls": 800.0, "with_frame": 1000.0})
    post, get = rows
    assert post["scenario"] == "generic parcels POST json"
    assert post["vs_diabetes"] == 0.25 and post["diabetes_rps"] == 2000
    assert post["server_us_per_request"] == 2000.0
    assert (post["in_process_share_of_cpu"], post["in_process_share_of_wall"]) == (0.5, 0.4)
    assert get["diabetes_scenario"] == "single GET /predict_data" and get["vs_diabetes"] == 0.16
    assert get["in_process_share_of_cpu"] is None and get["in_process_share_of_wall"] == 0.32
    text = "\n".join(generic.lines(rows, {"calls": 800.0, "with_frame": 1000.0}))
    assert "generic parcels POST json" in text and "= 0.25x single POST json (2000.0 req/s)" in text
    assert "800 us/call (1000 us with the DataFrame built per call)" in text
    assert "= 50% of the server's CPU time and 40% of its wall time per request" in text
    assert "CPU -" in text and "INVALID: errors" in text


def test_without_the_diabetes_row_or_the_timing_the_figures_say_so() -> None:
    rows = generic.summary([result("generic parcels GET query", 100, 50)], None)
    assert rows[0]["vs_diabetes"] is None and rows[0]["in_process_share_of_cpu"] is None
    text = "\n".join(generic.lines(rows, None))
    assert "diabetes single row not measured" in text and "in process" not in text
    assert generic.summary([result("generic parcels GET query", 0, None)], None) == []


def test_make_bench_serves_the_generic_model_from_a_temporary_copy(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench.run end to end on a real model server over the prepared copy, with a stand-in
    for wrk (2000 requests in one second); the copy is gone afterwards."""
    exe = fake_wrk(tmp_path)
    out, work = tmp_path / "reports" / "bench.json", tmp_path / "work"
    argv = [
        "--duration", "1", "--rounds", "1", "--warmup", "1", "--only", "single POST,parcels",
        "--lb", "off", "--wrk", str(exe), "--model-dir", str(model_dir), "--out", str(out),
        "--server-cpus", "", "--work-dir", str(work), "--in-process-seconds", "0.1",
    ]  # fmt: skip
    assert run_bench(argv) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    pairs = [(r["scenario"], r["app"]) for r in report["results"]]
    assert pairs[-2:] == [
        ("generic parcels POST json", "server"),
        ("generic parcels GET query", "server"),
    ]
    g = report["generic"]
    assert (g["model"], g["version"], g["record"]) == ("parcels", "1.0.0", generic.RECORD)
    assert set(g["in_process_us_per_call"]) == {"calls", "with_frame"}
    assert [c["vs_diabetes"] for c in g["comparisons"]] == [1.0, None]
    assert "Generic model parcels 1.0.0" in text and "us/call" in text
    assert list(work.iterdir()) == []
