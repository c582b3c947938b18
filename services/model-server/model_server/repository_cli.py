"""The repository's command line: ``python -m model_server.repository_cli list|remove|current``.

``make model-list``, ``make model-remove`` and (for rollouts) ``set-current`` run it. A refused
operation prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from model_server.core.bundle import read_manifest
from model_server.repository import (
    RepositoryError,
    bundle_dir,
    load_index,
    remove_version,
    set_current,
)

REFUSED = 2


def describe(repo: Path, name: str, version: str) -> tuple[str, str]:
    """A version's task and feature count from its manifest (``?`` where it is unreadable)."""
    try:
        manifest = read_manifest(bundle_dir(repo, name, version))
    except (OSError, ValueError):  # ManifestError is a ValueError
        return "?", "?"
    return manifest.task, str(len(manifest.features))


def listing(repo: Path) -> list[str]:
    """One line per model version: name, version, current mark, sha256 prefix, task, features."""
    index = load_index(repo)
    if not index.models:
        return [f"no models in {repo / 'index.json'}"]
    rows = [("MODEL", "VERSION", "CURRENT", "SHA256", "TASK", "FEATURES")]
    for name in sorted(index.models):
        model = index.models[name]
        for version, entry in model.versions.items():
            task, features = describe(repo, name, version)
            mark = "*" if version == model.current else ""
            rows.append((name, version, mark, entry.sha256[:12], task, features))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; the exit status."""
    p = argparse.ArgumentParser(prog="model-repository", description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=Path("models"))
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every model version")
    for command in ("remove", "set-current"):
        s = sub.add_parser(command)
        s.add_argument("name")
        s.add_argument("version")
    args = p.parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(listing(args.repository)))
        elif args.command == "remove":
            remove_version(args.repository, args.name, args.version)
            print(f"removed {args.name} {args.version}")
        else:
            set_current(args.repository, args.name, args.version)
            print(f"{args.name}: current version is now {args.version}")
    except RepositoryError as exc:
        print(f"model-repository: {exc}", file=sys.stderr)
        return REFUSED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
