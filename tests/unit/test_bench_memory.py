"""bench.memory (make bench-memory): /proc figures, the extra versions it writes, the arithmetic
of MiB per version (no thresholds on the figures themselves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from model_server.core.bundle import load_bundle
from model_server.repository import load_index

from bench import BenchError, generic, memory

STATUS = (
    "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  153600 kB\nThreads:\t1\n"
)


def test_resident_and_peak_memory_are_read_from_proc_status_in_mib() -> None:
    assert memory.parse_status(STATUS) == {"rss": 150.0, "peak": 200.0}
    with pytest.raises(BenchError, match="no VmRSS and VmHWM"):
        memory.parse_status("Name:\tpython\nVmRSS:\t 1 kB\n")
    with pytest.raises(BenchError, match="unexpected unit"):
        memory.parse_status("VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n")


def test_the_child_reports_on_one_marked_line_among_others() -> None:
    line = memory.MARK + json.dumps({"imports": STATUS, "app": STATUS, "models": {"m": ["1"]}})
    got = memory.parse_child(f"a log line\n{line}\n")
    assert got == {
        "imports": {"rss": 150.0, "peak": 200.0},
        "app": {"rss": 150.0, "peak": 200.0},
        "models": {"m": ["1"]},
    }
    with pytest.raises(BenchError, match="printed no BENCH_MEMORY line"):
        memory.parse_child("Traceback ...\n")


def test_the_child_runs_without_multiprocess_metrics_on_the_repository_given() -> None:
    base = {"PROMETHEUS_MULTIPROC_DIR": "/tmp/x", "MODELFLEET_INDEX_FILE": "/i", "HOME": "/h"}
    env = memory.child_env(Path("/repo"), base)
    assert "PROMETHEUS_MULTIPROC_DIR" not in env and "MODELFLEET_INDEX_FILE" not in env
    assert (env["MODELFLEET_MODEL_DIR"], env["HOME"]) == ("/repo", "/h")
    assert env["PYTHONPATH"] == str(memory.SERVER_DIR) and env["OPENBLAS_NUM_THREADS"] == "1"


def test_extra_versions_are_published_with_their_own_manifest_and_sha256(
    model_dir: Path, tmp_path: Path
) -> None:
    repo = generic.copy_repository(model_dir, tmp_path / "repo")
    assert memory.add_copies(repo, "diabetes-gbt", 2) == ["1.0.1", "1.0.2"]
    idx = load_index(repo)
    model = idx.models["diabetes-gbt"]
    assert list(model.versions) == ["1.0.0", "1.0.1", "1.0.2"] and model.current == "1.0.0"
    assert memory.versions_in(repo) == 5
    for version in ("1.0.1", "1.0.2"):
        bundle = load_bundle(repo / "diabetes-gbt" / version, idx.entry("diabetes-gbt", version))
        assert bundle.version == version
    assert load_index(model_dir).models["diabetes-gbt"].versions.keys() == {"1.0.0"}


def run(rss: float, peak: float, models: dict[str, list[str]]) -> dict[str, Any]:
    return {"imports": {"rss": 100.0, "peak": 101.0}, "app": {"rss": rss, "peak": peak},
            "models": models}  # fmt: skip


def write_index(repo: Path, versions: dict[str, list[str]]) -> Path:
    repo.mkdir()
    models = {n: {"current": v[0], "versions": {key: {} for key in v}} for n, v in versions.items()}
    (repo / "index.json").write_text(json.dumps({"models": models}))
    return repo


def test_medians_per_repository_and_mib_per_extra_version_over_the_first(tmp_path: Path) -> None:
    seed = {"a": ["1"], "b": ["1"]}
    more = {"a": ["1", "2", "3", "4", "5"], "b": ["1"]}
    repos = {
        "seed": write_index(tmp_path / "s", seed),
        "more": write_index(tmp_path / "m", more),
    }
    figures = {
        repos["seed"]: iter([run(150, 160, seed), run(152, 161, seed), run(190, 199, seed)]),
        repos["more"]: iter([run(158, 163, more), run(157, 162, more), run(160, 170, more)]),
    }
    rows = memory.measure(repos, 3, lambda repo: next(figures[repo]))
    assert [(r["repository"], r["versions"], r["rss_mib"], r["peak_mib"]) for r in rows] == [
        ("seed", 2, 152.0, 161.0),
        ("more", 6, 158.0, 163.0),
    ]
    assert "delta" not in rows[0] and len(rows[1]["runs"]) == 3
    assert rows[1]["delta"] == {"rss_mib_per_version": 1.5, "peak_mib_per_version": 0.5}
    text = memory.table(rows)
    assert "rss mib" in text.lower() and "1.50" in text and "0.50" in text
    seed_line = next(line for line in text.splitlines() if line.startswith("seed"))
    assert seed_line.split() == ["seed", "2", "100.0", "152.0", "161.0", "-", "-"]


def test_a_version_that_did_not_load_stops_the_measurement(tmp_path: Path) -> None:
    repos = {"seed": write_index(tmp_path / "s", {"a": ["1", "2"]})}
    with pytest.raises(BenchError, match=r"seed: 1 of 2 versions loaded"):
        memory.measure(repos, 1, lambda _: run(1, 1, {"a": ["1"]}))


def test_a_real_worker_app_loads_every_version_of_the_repository(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = memory.measure_once(model_dir)
    assert got["models"] == {"boston": ["1.0.0"], "diabetes": ["1.0.0"], "diabetes-gbt": ["1.0.0"]}
    assert got["app"]["rss"] >= got["imports"]["rss"] > 0
    monkeypatch.setattr(memory, "CHILD", "raise SystemExit('no app')")
    with pytest.raises(BenchError, match=r"create_app over .* failed: no app"):
        memory.measure_once(model_dir)


def test_make_bench_memory_measures_three_repositories_and_writes_the_report(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def once(repo: Path) -> dict[str, Any]:
        idx = json.loads((repo / "index.json").read_text())
        models = {n: list(m["versions"]) for n, m in idx["models"].items()}
        n = sum(len(v) for v in models.values())
        return run(150 + 2 * n, 160 + n, models)

    monkeypatch.setattr(memory, "measure_once", once)
    out, work = tmp_path / "reports" / "bench-memory.json", tmp_path / "work"
    argv = ["--model-dir", str(model_dir), "--copies", "2", "--repeats", "1", "--work-dir",
            str(work), "--out", str(out)]  # fmt: skip
    assert memory.main(argv) == 0
    report = json.loads(out.read_text())
    rows = {r["repository"]: r for r in report["results"]}
    assert list(rows) == ["seed", "seed + parcels", "seed + 2 x diabetes-gbt"]
    assert rows["seed + 2 x diabetes-gbt"]["versions"] == 5
    assert rows["seed + parcels"]["delta"] == {"rss_mib_per_version": 2.0,
                                               "peak_mib_per_version": 1.0}  # fmt: skip
    assert "seed + 2 x diabetes-gbt" in capsys.readouterr().out
    assert list(work.iterdir()) == []
    with pytest.raises(SystemExit, match="no model repository"):
        memory.main(["--model-dir", str(tmp_path / "none"), "--work-dir", str(work)])
    with pytest.raises(SystemExit):
        memory.main(["--copies", "0"])
