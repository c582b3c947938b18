"""The packaging command line: ``python -m model_server.package`` (``make model-package``).

Refusals print one line, ``model-package: <reason>``, on stderr and exit with status 2, without
a traceback: they are the operator's input problems, not the program's. Ctrl-C leaves nothing
half-written (the staging directory is removed on the way out) and exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from model_server.core.manifest import CategoricalFeature
from model_server.package import Packaged, package
from model_server.package_derive import DEFAULT_MARGIN, PackagingError

PROG = "model-package"
REFUSED = 2


def _pairs(text: str, what: str) -> dict[str, str]:
    """``a=b,c=d`` as a dict; one line of error for anything else."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PackagingError(f"{what}: expected name=value[,name=value...], got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _ranges(text: str) -> dict[str, tuple[float, float]]:
    """``name=min:max,...`` as feature ranges."""
    out = {}
    for name, value in _pairs(text, "RANGES").items():
        low, sep, high = value.partition(":")
        try:
            out[name] = (float(low), float(high))
        except ValueError:
            sep = ""
        if not sep or not out[name][0] <= out[name][1]:
            raise PackagingError(f"RANGES: {name}={value!r} is not min:max with min <= max")
    return out


def parser() -> argparse.ArgumentParser:
    """The command's arguments (make passes its variables as these options)."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=Path("models"), help="model repository")
    p.add_argument("--estimator", required=True, help="fitted estimator: .skops, or a pickle")
    p.add_argument("--sample", required=True, type=Path, help="sample CSV with a header line")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--version", required=True, help="model version")
    p.add_argument("--target", help="the sample's target column (not a feature)")
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.add_argument("--trust-pickle", action="store_true", help="allow joblib/pickle input")
    p.add_argument("--trust-types", default="", help="comma-separated types to trust")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="range widening")
    p.add_argument("--ranges", default="", help="name=min:max,... instead of derived ranges")
    p.add_argument("--answers", default="", help="class=answer,... (default: class labels)")
    p.add_argument("--threshold", type=float, help="binary: probability threshold")
    p.add_argument("--positive", help="binary: the class the threshold applies to")
    p.add_argument("--description", help="what the model is, for people")
    return p


def run(args: argparse.Namespace) -> Packaged:
    """Package as the arguments say."""
    if not 0 <= args.margin <= 100:
        raise PackagingError(f"MARGIN {args.margin} is not between 0 and 100")
    return package(
        args.estimator,
        args.sample,
        args.name,
        args.version,
        repository=args.repository,
        target=args.target or None,
        force=args.force,
        trust_pickle=args.trust_pickle,
        trusted_types=tuple(t.strip() for t in args.trust_types.split(",") if t.strip()),
        margin=args.margin,
        ranges=_ranges(args.ranges),
        answers=_pairs(args.answers, "ANSWERS") or None,
        threshold=args.threshold,
        positive_class=args.positive or None,
        description=args.description or None,
    )


def summary(done: Packaged) -> list[str]:
    """What was packaged, for the operator."""
    m = done.manifest
    strings = sum(isinstance(f, CategoricalFeature) for f in m.features)
    kinds = f"{len(m.features) - strings} numeric, {strings} string"
    lines = [
        f"packaged {m.name} {m.version} into {done.path} (current version: {done.current})",
        f"  {m.estimator}, {m.task}, {len(m.features)} features ({kinds})",
    ]
    if m.target.classes is not None:
        answers = ", ".join(f"{c}->{m.target.answer(c)}" for c in m.target.classes)
        rule = f", threshold {m.threshold:g}" if m.threshold is not None else ""
        lines.append(f"  classes {answers}{rule}")
    lines.append(
        f"  verified: the server's loader and predictor give the estimator's own outputs "
        f"for all {done.verified_rows} sample rows"
    )
    lines.append(f"  sha256 {m.artifact.sha256}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; the exit status."""
    args = parser().parse_args(argv)
    try:
        done = run(args)
    except PackagingError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    print("\n".join(summary(done)))
    return 0
