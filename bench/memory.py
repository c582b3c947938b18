"""``make bench-memory``: the resident memory a model-server worker needs per loaded model
version.

Run as ``python -m bench.memory`` from the repository root (``make bench-memory`` does).

A worker loads and verifies every version the index lists in ``create_app()`` (no
``preload_app``: each gunicorn worker holds its own copy, so a replica needs
``MODELFLEET_WORKERS`` times this). Each figure comes from a fresh Python process that imports
the app, builds it over one repository with ``PROMETHEUS_MULTIPROC_DIR`` unset, collects
garbage as a worker does after booting (gunicorn.conf.py's ``post_worker_init``), and reports
``VmRSS`` (resident now) and ``VmHWM`` (peak, i.e. ``ru_maxrss``) from ``/proc/self/status``,
before ``create_app()`` (the imports alone) and after it. The median of ``--repeats`` processes
is reported per repository.

The repositories, written to a temporary directory under ``--work-dir`` (build/) and removed
afterwards (the committed models/ is only read):

* ``seed``: a copy of ``--model-dir`` (models/);
* ``seed + parcels``: plus the generic model of ``make bench`` (bench/generic.py);
* ``seed + N x diabetes-gbt``: plus ``N`` extra versions of the largest seed model,
  ``diabetes-gbt`` (a 2.5 MB artifact of 100 trees), as 1.0.1, 1.0.2, ... (the same artifact,
  the manifest's version changed), added with ``model_server.repository.publish`` so the index
  holds their sha256.

Output: a table on stdout (MiB, and MiB per extra version over ``seed``) and ``--out``
(reports/bench-memory.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import ROOT, BenchError, generic

SERVER_DIR = ROOT / "services" / "model-server"
COPIED_MODEL = "diabetes-gbt"
MARK = "BENCH_MEMORY "
#: What the fresh process runs: the imports, then the app, as a gunicorn worker does.
CHILD = f"""
import gc, json
def status():
    with open("/proc/self/status") as f:
        return f.read()
from model_server.app import create_app
imports = status()
app = create_app()
gc.collect()
versions = app.extensions["modelfleet"].registry.versions
models = {{n: sorted(v) for n, v in versions.items()}}
print({MARK!r} + json.dumps({{"imports": imports, "app": status(), "models": models}}), flush=True)
"""


def parse_status(text: str) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of a ``/proc/<pid>/status`` text, in MiB (``rss``, ``peak``)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            number, unit = value.split()
            if unit != "kB":
                raise BenchError(f"/proc status: unexpected unit in {line!r}")
            out["rss" if key == "VmRSS" else "peak"] = int(number) / 1024
    if set(out) != {"rss", "peak"}:
        raise BenchError("/proc status: no VmRSS and VmHWM lines")
    return out


def parse_child(stdout: str) -> dict[str, Any]:
    """The child's one marked line: imports-only and app figures (MiB), the loaded models."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            return {
                "imports": parse_status(data["imports"]),
                "app": parse_status(data["app"]),
                "models": dict(data["models"]),
            }
    raise BenchError(f"the measuring process printed no {MARK.strip()} line: {stdout[-300:]!r}")


def child_env(repository: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The fresh process's environment: the server's package, the repository, no multiprocess
    metrics directory, BLAS on one thread, warnings-only logs."""
    env = {k: v for k, v in (os.environ if base is None else base).items()}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("MODELFLEET_INDEX_FILE", None)
    env.update(
        PYTHONPATH=str(SERVER_DIR),
        MODELFLEET_MODEL_DIR=str(repository),
        MODELFLEET_REPLICA_ID="bench-memory",
        MODELFLEET_LOG_LEVEL="WARNING",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def measure_once(repository: Path, timeout: float = 120) -> dict[str, Any]:
    """One fresh process over ``repository``: its figures (``parse_child``)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=child_env(repository),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"create_app over {repository} failed: {done.stderr[-500:]}")
    return parse_child(done.stdout)


def median_figures(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeated processes of each figure (MiB, rounded to 0.1), and the models."""

    def med(part: str, key: str) -> float:
        return round(statistics.median(r[part][key] for r in runs), 1)

    return {
        "imports_rss_mib": med("imports", "rss"),
        "rss_mib": med("app", "rss"),
        "peak_mib": med("app", "peak"),
        "models_loaded": runs[0]["models"],
        "runs": [{"imports": r["imports"], "app": r["app"]} for r in runs],
    }


def add_copies(repo: Path, name: str, count: int) -> list[str]:
    """Add ``count`` versions of ``name`` to ``repo``, copies of its current version with the
    manifest's version changed (1.0.1, 1.0.2, ... after 1.0.0), through ``repository.publish``
    so the index holds the right sha256 of each artifact and manifest; the versions added."""
    generic.import_model_server()
    from model_server.core.bundle import ARTIFACT_FILE, MANIFEST_FILE, sha256_bytes
    from model_server.repository import VersionEntry, load_index, publish, staging

    current = load_index(repo).models[name].current
    source = repo / name / current
    manifest = json.loads((source / MANIFEST_FILE).read_text())
    artifact = (source / ARTIFACT_FILE).read_bytes()
    major_minor, _, patch = current.rpartition(".")
    added = []
    for i in range(1, count + 1):
        version = f"{major_minor}.{int(patch) + i}"
        text = (json.dumps({**manifest, "version": version}, indent=2) + "\n").encode()
        with staging(repo) as tmp:
            staged = tmp / version
            staged.mkdir()
            (staged / ARTIFACT_FILE).write_bytes(artifact)
            (staged / MANIFEST_FILE).write_bytes(text)
            entry = VersionEntry(sha256_bytes(artifact), sha256_bytes(text))
            publish(repo, staged, name, version, entry)
        added.append(version)
    return added


def per_version(base: dict[str, Any], more: dict[str, Any], extra: int) -> dict[str, float]:
    """MiB per extra version (resident and peak) of ``more`` over ``base``."""
    return {
        "rss_mib_per_version": round((more["rss_mib"] - base["rss_mib"]) / extra, 2),
        "peak_mib_per_version": round((more["peak_mib"] - base["peak_mib"]) / extra, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The table ``make bench-memory`` prints."""
    head = (
        f"{'repository':26s} {'versions':>8s} {'imports MiB':>11s} {'RSS MiB':>8s} "
        f"{'peak MiB':>8s} {'+RSS MiB/version':>16s} {'+peak MiB/version':>17s}"
    )
    lines = ["", head, "-" * len(head)]
    for r in rows:
        d = r.get("delta")
        lines.append(
            f"{r['repository']:26s} {r['versions']:8d} {r['imports_rss_mib']:11.1f} "
            f"{r['rss_mib']:8.1f} {r['peak_mib']:8.1f} "
            + (
                f"{d['rss_mib_per_version']:16.2f} {d['peak_mib_per_version']:17.2f}"
                if d
                else f"{'-':>16s} {'-':>17s}"
            )
        )
    return "\n".join(lines)


def prepare(seed: Path, work: Path, copies: int) -> dict[str, Path]:
    """The measured repositories under ``work``: label -> path."""
    base = generic.copy_repository(seed, work / "seed")
    with_generic = generic.prepare(seed, work / "generic").repository
    with_copies = generic.copy_repository(seed, work / "copies")
    add_copies(with_copies, COPIED_MODEL, copies)
    return {
        "seed": base,
        f"seed + {generic.NAME}": with_generic,
        f"seed + {copies} x {COPIED_MODEL}": with_copies,
    }


def versions_in(repo: Path) -> int:
    """How many versions the repository's index lists."""
    index = json.loads((repo / "index.json").read_text())
    return sum(len(m["versions"]) for m in index["models"].values())


def measure(
    repos: dict[str, Path],
    repeats: int,
    once: Callable[[Path], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every repository measured ``repeats`` times (``once``, default ``measure_once``),
    interleaved; a row per repository, with the MiB per extra version over the first."""
    once = once or measure_once
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in repos}
    for _ in range(repeats):
        for label, repo in repos.items():
            runs[label].append(once(repo))
    rows = []
    for label, repo in repos.items():
        row = {"repository": label, "versions": versions_in(repo), **median_figures(runs[label])}
        loaded = sum(len(v) for v in row["models_loaded"].values())
        if loaded != row["versions"]:
            raise BenchError(f"{label}: {loaded} of {row['versions']} versions loaded ({repo})")
        rows.append(row)
    base = rows[0]
    for r in rows[1:]:
        extra = r["versions"] - base["versions"]
        if extra > 0:
            r["delta"] = per_version(base, r, extra)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=Path(env("BENCH_MODEL_DIR", ROOT / "models")))
    p.add_argument("--copies", type=int, default=int(env("BENCH_MEMORY_COPIES", "5")))
    p.add_argument("--repeats", type=int, default=int(env("BENCH_MEMORY_REPEATS", "3")))
    p.add_argument("--work-dir", type=Path, default=Path(env("BENCH_WORK_DIR", ROOT / "build")))
    p.add_argument(
        "--out",
        type=Path,
        default=Path(env("BENCH_MEMORY_OUT", ROOT / "reports/bench-memory.json")),
    )
    args = p.parse_args(argv)
    if args.copies < 1 or args.repeats < 1:
        p.error("--copies and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not (args.model_dir / "index.json").is_file():
            raise BenchError(f"no model repository (index.json) in {args.model_dir}")
        args.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.work_dir) as work:
            repos = prepare(args.model_dir.resolve(), Path(work), args.copies)
            print(
                f"bench-memory: {len(repos)} repositories x {args.repeats} fresh processes "
                "(create_app, PROMETHEUS_MULTIPROC_DIR unset), medians",
                flush=True,
            )
            rows = measure(repos, args.repeats)
    except BenchError as exc:
        raise SystemExit(f"bench-memory: {exc}") from None
    print(table(rows))
    print(
        "\nPer worker; a replica runs MODELFLEET_WORKERS workers, each loading every version "
        "the index lists."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {"copies": args.copies, "repeats": args.repeats, "copied_model": COPIED_MODEL},
        "results": rows,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"Wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
