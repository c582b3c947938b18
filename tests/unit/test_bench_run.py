"""make bench's requests (bench.scenarios) and verdicts (bench.table): what is sent and judged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import BenchError, scenarios, table
from bench.run import lb_scenarios, summarize
from tests.unit.bench_http import fake_wrk, run_bench, serve


def test_the_seed_models_give_the_requests_make_bench_has_always_sent(model_dir: Path) -> None:
    scs = {s.name: s for s in scenarios.scenarios(model_dir)}
    assert list(scs)[:2] == ["single GET /predict_data", "single POST json"]
    assert scs["single GET /predict_data"].path == "/predict_data?pregnant=1&glucose=3&pressure=1"
    assert json.loads(scs["single POST json"].body or b"") == {
        "pregnant": 1,
        "glucose": 3,
        "pressure": 1,
    }
    batches = [n for n in scs if n.startswith("batch")]
    assert batches == [f"batch {m} {f} 10k" for m in ("diabetes", "boston") for f in
                       ("json", "rows", "csv")]  # fmt: skip
    boston = scs["batch boston csv 10k"]
    assert boston.body is not None
    header = boston.body.split(b"\n", 1)[0].decode()
    assert header == "crim,zn,indus,chas,nox,rm,age,dis,rad,tax"
    assert boston.body.count(b"\n") == 1 + scenarios.BATCH_ROWS
    assert boston.apps == ("server", "naive") and boston.content_type == "text/csv"


def test_features_and_data_files_come_from_the_manifests(tmp_path: Path) -> None:
    models_dir, data = tmp_path / "models", tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_text("k,j,i,target\n1,2,3,x\n")
    (data / "b.csv").write_text("r,s\n0.5,7\n")
    for name, feats, file in (("diabetes", ["k", "j", "i"], "d.csv"), ("boston", ["s"], "b.csv")):
        (models_dir / name / "7").mkdir(parents=True)
        manifest = {"features": [{"name": f} for f in feats], "training_data": {"file": file}}
        (models_dir / name / "7" / "manifest.json").write_text(json.dumps(manifest))
    index = {"models": {name: {"current": "7"} for name in ("diabetes", "boston")}}
    (models_dir / "index.json").write_text(json.dumps(index))
    scs = {s.name: s for s in scenarios.scenarios(models_dir, data)}
    assert scs["single GET /predict_data"].path == "/predict_data?k=1&j=3&i=1"
    rows = json.loads(scs["batch boston json 10k"].body or b"")
    assert rows[:2] == [{"s": 7}, {"s": 7}]


def test_only_filters_by_parts_of_the_name(model_dir: Path) -> None:
    scs = scenarios.scenarios(model_dir)
    assert [s.name for s in scenarios.select(scs, "single, csv")] == [
        "single GET /predict_data", "single POST json",
        "batch diabetes csv 10k", "batch boston csv 10k",
    ]  # fmt: skip
    assert scenarios.select(scs, "") == scs


def test_the_load_balancer_measures_single_rows_and_one_batch_on_the_server_only(
    model_dir: Path,
) -> None:
    lb = lb_scenarios(scenarios.scenarios(model_dir))
    assert [s.name for s in lb] == [
        "single GET /predict_data", "single POST json", "batch diabetes json 10k",
    ]  # fmt: skip
    assert {s.apps for s in lb} == {("server",)}


def test_answers_are_checked_for_no_and_for_the_row_count() -> None:
    assert scenarios.answer_no({"Answer": ["no"]}) is None
    assert scenarios.answer_no({"predictions": ["no"]}) is None
    assert "expected the answer ['no']" in (scenarios.answer_no({"Answer": ["yes"]}) or "")
    check = scenarios.rows_check(3)
    assert check({"predictions": [1, 2, 3]}) is None
    assert check({"predictions": [1]}) == "expected 3 predictions, got 1"


def test_apps_agree_on_equal_labels_and_on_values_within_a_relative_1e_9() -> None:
    assert scenarios.agree(["no", "yes"], ["no", "yes"])
    assert not scenarios.agree(["no", "yes"], ["no", "no"])
    assert scenarios.agree([22.5, 1e6], [22.5 + 1e-9, 1e6 + 1e-4])
    assert not scenarios.agree([22.5], [22.5001])
    assert not scenarios.agree([1.0], [1.0, 2.0])


def test_a_scenario_is_checked_on_every_app_before_it_is_measured() -> None:
    sc = scenarios.Scenario("s", "GET", "/p", 1, ("server",), check=scenarios.answer_no)
    with serve({"/p": (200, {"Answer": ["no"]}), "/q": (500, {"e": 1})}) as (url, _):
        scenarios.check_scenario(sc, {"server": url})
        wrong = scenarios.Scenario("s", "GET", "/p", 1, ("server",), check=lambda b: "bad")
        with pytest.raises(BenchError, match="s on server: bad"):
            scenarios.check_scenario(wrong, {"server": url})
        failing = scenarios.Scenario("f", "GET", "/q", 1, ("server",))
        with pytest.raises(BenchError, match="f on server: HTTP 500"):
            scenarios.check_scenario(failing, {"server": url})


def test_the_server_and_the_naive_port_must_agree_on_batches() -> None:
    sc = scenarios.Scenario("b", "GET", "/b", 2, ("server", "naive"))
    with (
        serve({"/b": (200, {"predictions": ["no", "yes"]})}) as (one, _),
        serve({"/b": (200, {"predictions": ["no", "no"]})}) as (other, _),
    ):
        scenarios.check_scenario(sc, {"server": one, "naive": one})
        with pytest.raises(BenchError, match="the server and the naive port disagree"):
            scenarios.check_scenario(sc, {"server": one, "naive": other})


def run(rps: float, errors: int = 0, cpu: float | None = 10.0) -> dict[str, Any]:
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us_per_request": cpu, "errors": errors}


def test_a_pair_is_summarised_by_medians_and_is_invalid_with_any_error() -> None:
    sc = scenarios.Scenario("b", "POST", "/m/predict?x", 10, ("server",), body=b"{}")
    r = summarize("host", sc, "server", [run(100), run(300, errors=1), run(200, cpu=None)])
    assert (r["rps"], r["rows_per_s"], r["cpu_us_per_request"]) == (200, 2000, 10.0)
    assert (r["path"], r["content_type"], r["errors"], r["valid"]) == (
        "/m/predict",
        "application/json",
        1,
        False,
    )


def result(scenario: str, app: str, rps: float, rows: int = 1, valid: bool = True) -> dict:
    return {
        "where": "host", "scenario": scenario, "app": app, "rps": rps, "rows_per_request": rows,
        "rows_per_s": rps * rows, "valid": valid, "p50_ms": 1.0, "p99_ms": 2.0,
        "cpu_us_per_request": None,
    }  # fmt: skip


def test_targets_compare_single_rows_with_both_baselines_and_batches_with_the_rows_floor() -> None:
    results = [
        result("single GET /predict_data", "server", 900),
        result("single GET /predict_data", "constant", 1000),
        result("single GET /predict_data", "naive", 200),
        result("batch diabetes json 10k", "server", 99, rows=10_000),
        result("batch diabetes json 10k", "naive", 5, rows=10_000),
        {**result("single POST json", "server", 900), "where": "lb"},
    ]
    cks = {c["check"]: c for c in table.checks(results)}
    assert set(cks) == {
        "single GET /predict_data: server vs constant",
        "single GET /predict_data: server vs naive",
        "batch diabetes json 10k: server rows/s",
    }
    assert (
        cks["single GET /predict_data: server vs constant"]["value"],
        cks["single GET /predict_data: server vs constant"]["pass"],
    ) == (0.9, True)
    assert cks["single GET /predict_data: server vs naive"]["pass"] is True
    assert cks["batch diabetes json 10k: server rows/s"] == {
        "check": "batch diabetes json 10k: server rows/s",
        "value": 990_000,
        "target": ">= 1,000,000",
        "pass": False,
    }


def test_a_target_met_with_errors_is_not_a_pass() -> None:
    results = [
        result("single POST json", "server", 900, valid=False),
        result("single POST json", "constant", 100),
    ]
    assert [c["pass"] for c in table.checks(results)] == [False]


def test_the_table_shows_ratios_to_the_baselines_and_flags_invalid_runs() -> None:
    results = [
        result("single GET /predict_data", "server", 900),
        result("single GET /predict_data", "constant", 1000),
        result("single GET /predict_data", "naive", 300, valid=False),
    ]
    text = table.table(results, table.checks(results))
    lines = text.splitlines()
    assert lines[0] == "" and lines[1].split()[:3] == ["where", "scenario", "app"]
    server = next(line for line in lines if " server " in line)
    assert "0.90x" in server and "3.00x" in server
    assert "INVALID: errors" in next(line for line in lines if " naive " in line)
    assert "Targets (measured, not asserted):" in lines
    assert any(
        line.startswith("  MISS  single GET /predict_data: server vs naive") for line in lines
    )


def test_make_bench_measures_real_servers_and_writes_the_same_report(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench.run end to end on the real three apps (gunicorn), with a stand-in for wrk that
    reports 2000 requests in one second: everything but the load itself is real."""
    exe = fake_wrk(tmp_path)
    out = tmp_path / "reports" / "bench.json"
    argv = [
        "--duration", "1", "--rounds", "2", "--warmup", "1", "--only", "single GET,diabetes csv",
        "--lb", "off", "--wrk", str(exe), "--model-dir", str(model_dir), "--out", str(out),
        "--server-cpus", "",
    ]  # fmt: skip
    assert run_bench(argv) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report) == [
        "generated", "git_commit", "host", "settings", "targets", "checks", "results",
    ]  # fmt: skip
    pairs = [(r["where"], r["scenario"], r["app"]) for r in report["results"]]
    assert pairs == [
        ("host", "single GET /predict_data", "server"),
        ("host", "single GET /predict_data", "constant"),
        ("host", "single GET /predict_data", "naive"),
        ("host", "batch diabetes csv 10k", "server"),
        ("host", "batch diabetes csv 10k", "naive"),
    ]
    server = report["results"][0]
    assert (server["rps"], server["p50_ms"], server["valid"]) == (2000.0, 0.5, True)
    assert len(server["runs"]) == 2
    assert server["cpu_us_per_request"] is not None  # the gunicorn master's tree, from /proc
    assert report["results"][3]["rows_per_s"] == 2000.0 * 10_000
    assert report["settings"]["load_balancer"] == "skipped (--lb off)"
    assert "where scenario" in " ".join(text.split())
    assert "Load balancer: skipped (--lb off)" in text
    assert (tmp_path / "reports" / "bench-logs" / "naive.log").is_file()
