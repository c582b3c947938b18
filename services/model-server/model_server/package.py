"""Package a fitted scikit-learn estimator as a verified bundle in the model repository.

Usage (``make model-package`` runs this)::

    python -m model_server.package --repository models --estimator model.skops \\
        --sample sample.csv --name churn --version 1.0.0 [--target churned] [--force] ...

or, in a notebook, with the fitted estimator itself::

    from model_server.package import package
    package(pipeline, "sample.csv", "churn", "1.0.0", repository="models", target="churned")

The bundle is derived, not typed by hand (``package_derive``), then verified before anything
is written to the repository: it is loaded by the server's own ``load_bundle`` (skops with the
server's allow-list) from a staging directory, the sample is parsed by the server's own CSV
parser, and the server's ``Predictor`` must give exactly the estimator's own answers and
probabilities for every sample row. Only then is the directory renamed into place and the
index updated (``repository.publish``). Every refusal is a ``PackagingError`` with one line.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy
import sklearn
import skops
import skops.io as sio

from model_server.core.bundle import (
    ARTIFACT_FILE,
    MANIFEST_FILE,
    TRUSTED_TYPES,
    read_manifest,
    sha256_bytes,
)
from model_server.core.manifest import (
    Artifact,
    DataFile,
    Feature,
    GoldenRow,
    JSONValue,
    Manifest,
    ManifestError,
    Target,
    Task,
    Training,
    value_quartiles,
)
from model_server.package_derive import (
    DEFAULT_MARGIN,
    PackagingError,
    Sample,
    check_estimator,
    derive_features,
    encoder_categories,
    feature_names,
    golden_inputs,
    model_input,
    range_rule,
    read_sample,
    refuse_unservable_types,
)
from model_server.package_load import check_server_version, load_estimator, stderr
from model_server.package_verify import Expected, verify
from model_server.repository import (
    Index,
    RepositoryError,
    VersionEntry,
    bundle_dir,
    load_index,
    publish,
    staging,
)
from model_server.skops_archive import deterministic_skops

__all__ = ["Options", "Packaged", "PackagingError", "package"]


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the operator may set; everything else is derived.

    Attributes:
        target: The sample's target column (left out of the features; scores the sample).
        force: Replace an existing version.
        trust_pickle: Allow loading a joblib/pickle file (which runs code).
        trusted_types: Types beyond the server's allow-list to trust (recorded).
        margin: Widening of numeric ranges, as a fraction of the sample's span per side.
        ranges: Feature -> (min, max), instead of the derived range.
        answers: Class label -> answered label; ``None`` answers the class labels.
        threshold: Binary classifiers: answer ``positive_class`` when its probability is at
            least this; ``None`` answers the estimator's own ``predict``.
        positive_class: The class the threshold applies to (default: the second class).
        description: What the model is, for people.
    """

    target: str | None = None
    force: bool = False
    trust_pickle: bool = False
    trusted_types: tuple[str, ...] = ()
    margin: float = DEFAULT_MARGIN
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    answers: Mapping[str, str] | None = None
    threshold: float | None = None
    positive_class: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Packaged:
    """A packaged, verified bundle: where it is, its manifest, and the repository's index."""

    path: Path
    manifest: Manifest
    index: Index
    verified_rows: int

    @property
    def current(self) -> str:
        """The model's current version after packaging."""
        return self.index.models[self.manifest.name].current


def package(
    estimator: Any,
    sample: Any,
    name: str,
    version: str,
    *,
    repository: str | Path = "models",
    warn: Callable[[str], None] = stderr,
    **options: Any,
) -> Packaged:
    """Package ``estimator`` (a fitted estimator, or a ``.skops``/joblib/pickle file) with
    ``sample`` (a CSV file, or in a notebook a pandas DataFrame, recorded as ``sample.csv``).

    ``options`` are ``Options``'s fields. Raises ``PackagingError`` (one line) for anything
    refused; nothing is left in the repository then.
    """
    opts = Options(**options)
    repo = Path(repository)
    try:
        target_dir = bundle_dir(repo, name, version)
        if not opts.force and (load_index(repo).entry(name, version) or target_dir.exists()):
            raise PackagingError(f"{name} {version} exists already (FORCE=1 replaces it)")
    except RepositoryError as exc:
        raise PackagingError(str(exc)) from None
    check_server_version()
    source = estimator if isinstance(estimator, str | Path) else None
    model = load_estimator(estimator, opts.trusted_types, opts.trust_pickle, warn)
    task = check_estimator(model)
    table = _read_sample(sample)
    artifact = deterministic_skops(model)
    # Beyond skops' own defaults, which the server's loader accepts as well.
    extra = [t for t in sio.get_untrusted_types(data=artifact) if t not in TRUSTED_TYPES]
    refuse_unservable_types(extra, opts.trusted_types)
    reference = _reference_quartiles(repo, name) if task == "regression" else None
    manifest, expected = build_manifest(
        model, task, table, name, version, artifact, opts, source, reference
    )
    with staging(repo) as tmp:
        # load_bundle checks that the directory is <name>/<version>, as in the repository.
        staged = tmp / name / version
        staged.mkdir(parents=True)
        (staged / ARTIFACT_FILE).write_bytes(artifact)
        text = (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()
        (staged / MANIFEST_FILE).write_bytes(text)
        verify(staged, manifest, table, expected, _own(model, task, manifest, opts))
        entry = VersionEntry(manifest.artifact.sha256, sha256_bytes(text))
        try:
            index = publish(repo, staged, name, version, entry, force=opts.force)
        except RepositoryError as exc:
            raise PackagingError(str(exc)) from None
    return Packaged(target_dir, manifest, index, len(table.rows))


def _reference_quartiles(repo: Path, name: str) -> tuple[float, ...] | None:
    """The ``value_quartiles`` of the model's current version, which a new version keeps: every
    version of a regressor is counted in the same bins, so the rollout gates' prediction mix
    compares their predicted values (a version shifted on everything, its own sample included,
    would look unchanged against bins of its own). None for a new model."""
    try:
        entry = load_index(repo).models.get(name)
        if entry is None:
            return None
        manifest = read_manifest(bundle_dir(repo, name, entry.current))
    except (RepositoryError, OSError, ValueError):
        return None  # an unreadable current version: this one's own quartiles
    return manifest.target.value_quartiles


def _read_sample(sample: Any) -> Sample:
    """The sample from a CSV file, or from a DataFrame written as CSV (pandas writes floats
    with ``repr``, which round-trips, so the CSV holds exactly the frame's numbers)."""
    if hasattr(sample, "to_csv") and not isinstance(sample, str | Path):
        return read_sample("sample.csv", sample.to_csv(index=False).encode())
    path = Path(sample)
    try:
        return read_sample(path.name, path.read_bytes())
    except OSError as exc:
        raise PackagingError(f"cannot read the sample: {exc}") from None


# --------------------------------------------------------------------------------------------
# The manifest


def _own(model: Any, task: Task, manifest: Manifest, opts: Options) -> Any:
    """For an estimator fitted on a DataFrame: its outputs on any input (``verify``'s
    bit-exact check runs it on the server's matrix); ``None`` for others."""
    if getattr(model, "feature_names_in_", None) is None:
        return None
    return lambda x: own_outputs(model, task, x, manifest.target, opts)


def build_target(model: Any, task: Task, opts: Options, name: str) -> Target:
    """The manifest target: classes from the estimator, answers and threshold as set."""
    if task == "regression":
        for key, value in (("ANSWERS", opts.answers), ("THRESHOLD", opts.threshold)):
            if value is not None:
                raise PackagingError(f"{key} applies to classifiers only")
        return Target(name=name)
    classes = tuple(str(c) for c in model.classes_)
    if opts.answers is not None and set(opts.answers) != set(classes):
        raise PackagingError(f"ANSWERS must map every class, exactly: {', '.join(classes)}")
    positive = opts.positive_class
    if opts.threshold is not None:
        if len(classes) != 2 or not hasattr(model, "predict_proba"):
            raise PackagingError("THRESHOLD needs a binary classifier with predict_proba")
        positive = classes[1] if positive is None else positive
    if positive is not None and positive not in classes:
        raise PackagingError(f"POSITIVE {positive!r} is not a class: {', '.join(classes)}")
    return Target(name=name, positive_class=positive, answers=opts.answers, classes=classes)


def own_outputs(model: Any, task: Task, x: Any, target: Target, opts: Options) -> Expected:
    """What the estimator itself answers for the sample (threshold applied where set)."""
    if task == "regression":
        values = np.asarray(model.predict(x), dtype=np.float64)
        if values.ndim != 1:
            raise PackagingError("multi-output regressors are not supported")
        return Expected(values.tolist(), None, (), [])
    classes = tuple(target.classes or ())
    proba = np.asarray(model.predict_proba(x)) if hasattr(model, "predict_proba") else None
    if opts.threshold is not None and proba is not None and target.positive_class is not None:
        pos = classes.index(target.positive_class)
        labels = [classes[pos] if p >= opts.threshold else classes[1 - pos] for p in proba[:, pos]]
    else:
        labels = [str(c) for c in model.predict(x)]
    return Expected([target.answer(c) for c in labels], proba, classes, labels)


def build_manifest(
    model: Any,
    task: Task,
    table: Sample,
    name: str,
    version: str,
    artifact: bytes,
    opts: Options,
    source: str | Path | None,
    reference: tuple[float, ...] | None = None,
) -> tuple[Manifest, Expected]:
    """The manifest, and the estimator's own outputs on the sample for verification;
    ``reference``: a regressor's value quartiles to keep (else its sample predictions')."""
    if opts.target is not None and opts.target not in table.header:
        raise PackagingError(f"sample {table.file} has no target column {opts.target!r}")
    names = feature_names(model, table, opts.target)
    features = derive_features(
        names, table, encoder_categories(model), opts.margin, dict(opts.ranges)
    )
    target = build_target(model, task, opts, opts.target or "target")
    expected = own_outputs(model, task, model_input(features, table, model), target, opts)
    if task == "regression":
        values = cast(list[float], expected.answers)
        target = replace(target, value_quartiles=reference or value_quartiles(values))
    kind = type(model)
    origin = Path(source).name if source is not None else "a Python object"
    try:
        manifest = Manifest(
            name=name,
            version=version,
            task=task,
            description=opts.description or f"{kind.__name__} packaged from {origin}.",
            estimator=f"{kind.__module__}.{kind.__qualname__}",
            features=features,
            feature_range_rule=range_rule(opts.margin),
            target=target,
            threshold=opts.threshold,
            threshold_note=_threshold_note(target, opts.threshold),
            hyperparameters=_hyperparameters(model),
            training=Training(
                rows=len(table.rows),
                split="unknown: fitted outside ModelFleet; rows counts the packaging sample",
            ),
            metrics=_metrics(task, table, opts.target, expected),
            training_data=DataFile(file=table.file, sha256=table.sha256),
            artifact=Artifact(file=ARTIFACT_FILE, format="skops", sha256=sha256_bytes(artifact)),
            trusted_types=tuple(opts.trusted_types) or None,
            libraries=_libraries(model),
            golden_rows=_golden_rows(features, table, expected),
        )
    except ManifestError as exc:
        raise PackagingError(f"the derived manifest is invalid: {exc}") from None
    return manifest, expected


def _threshold_note(target: Target, threshold: float | None) -> str | None:
    if threshold is None or target.positive_class is None:
        return None
    answer = target.answer(target.positive_class)
    return (
        f"Set by the operator when packaging: a row is answered {answer!r} when the "
        f"predicted probability of {target.positive_class!r} is >= threshold."
    )


def _hyperparameters(model: Any) -> dict[str, JSONValue]:
    """The estimator's own (not nested) settings that are plain JSON values."""
    params = model.get_params(deep=False)
    plain = (str, int, float, bool, type(None))
    return {k: v for k, v in sorted(params.items()) if isinstance(v, plain)}


def _metrics(task: Task, table: Sample, target: str | None, expected: Expected) -> dict[str, float]:
    if target is None:
        return {}
    truth = table.column(target)
    if task == "regression":
        y = np.array([float(v) for v in truth])
        pred = np.array(expected.answers, dtype=np.float64)
        total = float(((y - y.mean()) ** 2).sum())
        r2 = 1 - float(((y - pred) ** 2).sum()) / total if total else 0.0
        return {"sample_r2": round(r2, 6)}
    hits = sum(label == cell.strip() for label, cell in zip(expected.labels, truth, strict=True))
    return {"sample_accuracy": round(hits / len(truth), 6)}


def _golden_rows(
    features: Sequence[Feature], table: Sample, expected: Expected
) -> tuple[GoldenRow, ...]:
    rows = []
    for i, inputs in golden_inputs(features, table):
        proba = None
        if expected.proba is not None:
            proba = {c: float(p) for c, p in zip(expected.classes, expected.proba[i], strict=True)}
        rows.append(GoldenRow(inputs=inputs, prediction=expected.answers[i], probabilities=proba))
    return tuple(rows)


def _libraries(model: Any) -> dict[str, str]:
    libraries = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
    }
    if getattr(model, "feature_names_in_", None) is not None:
        import pandas as pd  # fitted on a DataFrame: serving may need pandas too

        libraries["pandas"] = pd.__version__
    return libraries


if __name__ == "__main__":
    from model_server.package_cli import main

    raise SystemExit(main())
