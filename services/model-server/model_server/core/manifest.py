"""The bundle manifest (``manifest.json``): one typed, validated class for training and serving.

``train.py`` builds a ``Manifest`` and writes ``to_dict()``; ``load_bundle`` reads the file with
``Manifest.from_dict``, which refuses anything that does not follow the format with a
``ManifestError`` whose message starts with the key path (``features[2].min: expected a number,
got a string``). ``to_dict`` gives back exactly the keys, order and values that were read, so
``GET /models/<name>`` serves what the file says.

The format is shaped for models other than the seed ones too (issue 10): features are numeric
(a range, optionally a set of allowed codes) or categorical (strings from an allowed set),
classifiers may have any number of classes, the decision threshold is optional, and golden rows
record inputs with the outputs a bundle must reproduce.

Format 2 (issue 10) adds one optional key, ``trusted_types``: the types beyond the server's
allow-list that the operator trusted when packaging. Format 1 files are still read, and may not
have it.

Why ``"manifest_version"``, an integer and the first key: the name says what it versions,
the manifest format, and cannot be mistaken for the model's own ``version``; readers only test
it for membership in ``SUPPORTED_VERSIONS``, so an integer says all there is to say. BentoML's
``model.yaml`` keeps its format revision the same way (``api_version: v1``) beside the model's
version; MLflow's ``MLmodel`` records only ``mlflow_version``, the writing library's release,
which leaves a reader to infer the format from a library version: the guess this field avoids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from model_server.core.manifest_parts import (
    TASKS,
    Artifact,
    CategoricalFeature,
    DataFile,
    Feature,
    GoldenRow,
    NumericFeature,
    Target,
    Task,
    Training,
    check_features,
    check_golden_row,
    check_target,
    golden_rows_reader,
    plain,
    read_artifact,
    read_data_file,
    read_feature,
    read_target,
    read_training,
    value_quartiles,
)
from model_server.core.manifest_reader import JSONValue, ManifestError, Reader

__all__ = [
    "MANIFEST_VERSION",
    "SUPPORTED_VERSIONS",
    "Artifact",
    "CategoricalFeature",
    "DataFile",
    "Feature",
    "GoldenRow",
    "JSONValue",
    "Manifest",
    "ManifestError",
    "NumericFeature",
    "Target",
    "Task",
    "Training",
    "value_quartiles",
]

MANIFEST_VERSION: Final = 2
"""The format version this code writes (2 added ``trusted_types``)."""
SUPPORTED_VERSIONS: Final = frozenset({1, 2})
"""Every format version this code reads; any other is refused."""
ARTIFACT_FORMATS: Final = ("skops",)
# Names and versions become directory names and URL segments: no path characters (issue 10).
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A type as skops names it: dotted module path and qualified name (``pkg.mod.Class``).
_TYPE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything known about a bundle's model: the content of ``manifest.json``.

    Fields are in the order of the file's keys; optional fields left at ``None`` are not
    written. Construction checks the relations between fields (``ManifestError``), so a
    manifest built in code is held to the same rules as one read by ``from_dict``, which also
    checks each key's type and refuses unknown keys.

    Attributes:
        manifest_version: The format version (``MANIFEST_VERSION``).
        name: Model name, also the bundle directory's name.
        version: The model's version.
        task: ``"classification"`` or ``"regression"``.
        description: What the model is, for people.
        estimator: The estimator's class, ``module.QualifiedName``.
        features: The inputs, in model column order.
        feature_range_rule: How the features' valid ranges were chosen.
        target: What is predicted; classifiers' classes and answer labels.
        threshold: Binary classifiers: answer the positive class when its probability is at
            least this; ``None`` to answer the estimator's own prediction.
        threshold_note: Why the threshold is what it is.
        hyperparameters: The estimator's settings, as recorded by training.
        training: Rows used and how the data was split.
        coefficients: Linear models: intercept and one coefficient per feature.
        metrics: Quality measured at training time (name -> value).
        training_data: The data file the model was trained on (or the packaging sample).
        artifact: The serialised estimator's file, format and sha256.
        trusted_types: Types beyond the server's allow-list that the operator trusted
            explicitly when packaging (format 2 on); ``None`` when there are none.
        libraries: Library versions the model was made with (``scikit-learn`` at least).
        golden_rows: Inputs with the outputs the bundle must give for them.
    """

    manifest_version: int = MANIFEST_VERSION
    name: str
    version: str
    task: Task
    description: str
    estimator: str
    features: tuple[Feature, ...]
    feature_range_rule: str | None = None
    target: Target
    threshold: float | None = None
    threshold_note: str | None = None
    hyperparameters: Mapping[str, JSONValue] | None = None
    training: Training
    coefficients: Mapping[str, float] | None = None
    metrics: Mapping[str, float]
    training_data: DataFile
    artifact: Artifact
    trusted_types: tuple[str, ...] | None = None
    libraries: Mapping[str, str]
    golden_rows: tuple[GoldenRow, ...] | None = None

    def __post_init__(self) -> None:
        _check(self)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature names in model column order."""
        return tuple(f.name for f in self.features)

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Parse and validate a manifest as read from JSON.

        Raises:
            ManifestError: naming the key path and the reason, for a wrong type, a missing or
                unknown key, an unsupported ``manifest_version`` or inconsistent fields.
        """
        r = Reader(data, "")
        # The version first: a manifest of another format fails on its version, not on a key
        # that format renamed.
        version = r.get("manifest_version")
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            got = "missing" if version is None else f"unsupported version {version!r}"
            raise ManifestError("manifest_version", f"{got}; this server reads {_supported()}")
        manifest = cls(
            manifest_version=version,
            name=r.string("name"),
            version=r.string("version"),
            task=r.choice("task", TASKS),
            description=r.string("description"),
            estimator=r.string("estimator"),
            features=tuple(read_feature(f) for f in r.items("features")),
            feature_range_rule=r.opt("feature_range_rule", r.string),
            target=read_target(r.obj("target")),
            threshold=r.opt("threshold", r.number),
            threshold_note=r.opt("threshold_note", r.string),
            hyperparameters=r.opt("hyperparameters", r.json_object),
            training=read_training(r.obj("training")),
            coefficients=r.opt("coefficients", r.numbers),
            metrics=r.numbers("metrics"),
            training_data=read_data_file(r.obj("training_data")),
            artifact=read_artifact(r.obj("artifact")),
            trusted_types=r.opt("trusted_types", r.string_list),
            libraries=r.strings("libraries"),
            golden_rows=r.opt("golden_rows", golden_rows_reader(r)),
        )
        r.done()
        return manifest

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON data, keys in file order: ``from_dict``'s exact inverse."""
        data: dict[str, Any] = plain(self)
        return data


def _supported() -> str:
    return "manifest_version " + " or ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))


def _check(m: Manifest) -> None:
    """The rules that involve more than one key's type."""
    if m.manifest_version not in SUPPORTED_VERSIONS:
        raise ManifestError("manifest_version", f"{m.manifest_version}: use {_supported()}")
    for key, value in (("name", m.name), ("version", m.version)):
        if not _PLAIN_NAME.fullmatch(value):
            raise ManifestError(key, f"{value!r} is not a plain name (A-Z a-z 0-9 . _ -)")
    check_features(m.features)
    check_target(m.task, m.target, m.threshold, m.threshold_note)
    for key, part in (("training_data", m.training_data), ("artifact", m.artifact)):
        if not _SHA256.fullmatch(part.sha256):
            raise ManifestError(f"{key}.sha256", "expected 64 lowercase hex digits")
    if m.artifact.format not in ARTIFACT_FORMATS:
        raise ManifestError(
            "artifact.format", f"{m.artifact.format!r} is not one of {ARTIFACT_FORMATS}"
        )
    # The server joins the file name to the bundle directory: no way out of it.
    file = m.artifact.file
    if not file or "/" in file or "\\" in file or file in (".", ".."):
        raise ManifestError("artifact.file", f"{file!r} is not a file name inside the bundle")
    _check_trusted_types(m)
    if "scikit-learn" not in m.libraries:
        raise ManifestError("libraries", "missing scikit-learn (the version the model needs)")
    for i, row in enumerate(m.golden_rows or ()):
        check_golden_row(row, f"golden_rows[{i}]", m.task, m.features, m.target)


def _check_trusted_types(m: Manifest) -> None:
    """``trusted_types`` exists from format 2 on; when present it names at least one type,
    each once, each a dotted type name (what skops reports and ``trusted=`` takes)."""
    types = m.trusted_types
    if types is None:
        return
    if m.manifest_version < 2:
        raise ManifestError("trusted_types", "needs manifest_version 2")
    if not types:
        raise ManifestError("trusted_types", "expected at least one type (or leave it out)")
    if len(set(types)) != len(types):
        raise ManifestError("trusted_types", "types repeat")
    for i, name in enumerate(types):
        if not _TYPE_NAME.fullmatch(name):
            raise ManifestError(f"trusted_types[{i}]", f"{name!r} is not a dotted type name")
