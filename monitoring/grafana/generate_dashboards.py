#!/usr/bin/env python3
"""Generate the ModelFleet dashboards: Grafana's and the Prometheus console pages.

From the one panel list of each dashboard below it writes
- monitoring/grafana/dashboards/*.json, which Grafana provisions as they are, and
- monitoring/prometheus/consoles/*.html (and index.html), the same panels and queries served
  by Prometheus itself at /consoles/ (console_pages.py translates; no Grafana needed).
The files are committed; this script is how they are written. Edit the panel lists, then run:

    python3 monitoring/grafana/generate_dashboards.py          # rewrite the files
    python3 monitoring/grafana/generate_dashboards.py --check  # exit 1 if any is stale

tests/monitoring/test_dashboards.py runs the check, so a hand edit of a generated file fails CI.
Standard library only: it runs anywhere Python 3.9+ does.

Conventions (tests/monitoring/ relies on them):
- every dashboard has a fixed `uid` (the dashboard's address: links and bookmarks use it);
- the datasource is always referenced by uid (`prometheus`, provisioned in
  provisioning/datasources/prometheus.yml), never by name;
- the only template variable is `$model`, a regex (`model=~"$model"`) whose "All" value is
  `.*`: substituting `.*` turns any panel query into valid PromQL;
- queries prefer the recording rules of monitoring/prometheus/rules/ (cheap, and the same
  numbers the alerts see); raw metrics only where no rule exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import console_pages
from dashboards_platform import loadbalancer, prometheus
from dashboards_rollouts import rollouts
from dashboards_serving import overview, replicas
from panels import CONSOLES_DIR, MONITORING, OUT_DIR

DASHBOARDS = {
    "overview.json": overview,
    "replicas.json": replicas,
    "loadbalancer.json": loadbalancer,
    "prometheus.json": prometheus,
    "rollouts.json": rollouts,
}


def render() -> dict[Path, str]:
    """Path -> text of every generated file: Grafana JSON, console pages, console index."""
    out: dict[Path, str] = {}
    pages: list[tuple[str, dict]] = []
    for name, build in DASHBOARDS.items():
        out[OUT_DIR / name] = json.dumps(build(), indent=2, sort_keys=False) + "\n"
        # The pages are read back from the JSON exactly as Grafana gets it.
        pages.append((Path(name).with_suffix(".html").name, json.loads(out[OUT_DIR / name])))
    for filename, dash in pages:
        out[CONSOLES_DIR / filename] = console_pages.page(dash, filename, pages)
    out[CONSOLES_DIR / "index.html"] = console_pages.index(pages)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check report the stale ones (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed generated file is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(MONITORING)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale files (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
