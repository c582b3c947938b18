"""A model bundle, ``<repo>/<name>/<version>/{model.skops,manifest.json}``, verified, then loaded.

The manifest (``core.manifest.Manifest``) is parsed and validated first; it records the
artifact's sha256. The repository's index (``model_server.repository``), which the operator
deploys, records the sha256 of both files as well, so replacing artifact and manifest together
is caught too. ``load_bundle`` hashes the bytes and
refuses (``BundleError``) on any mismatch *before* deserialising them, then loads the same
bytes it hashed (no second read, so the file cannot change in between) with skops and an
explicit allow-list of types. Pickle and joblib are never used: loading a pickle runs
arbitrary code, a skops file only rebuilds the listed types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import skops.io as sio

from model_server.core.manifest import Manifest, ManifestError
from model_server.core.schema import Schema
from model_server.repository import VersionEntry

ARTIFACT_FILE: Final = "model.skops"
MANIFEST_FILE: Final = "manifest.json"

#: Every non-builtin type the ModelFleet artifacts contain, passed to skops as ``trusted``.
#: skops also trusts its own safe defaults (builtin containers, numpy arrays, scikit-learn's
#: estimators and transformers); anything else in an artifact makes ``load_bundle`` refuse
#: it. ``tests/unit/test_bundle.py`` checks that the trained artifacts contain no other types,
#: and ``tests/unit/test_generic_models.py`` which of these each supported estimator needs
#: (``skops.io.get_untrusted_types`` on fitted objects, scikit-learn 1.9.1, skops 0.16). Each
#: is plain data rebuilt from arrays, none holds a callable. Left out on purpose:
#: ``functools.partial`` and ``sklearn.utils.validation.check_array``, which a
#: HistGradientBoosting model with ``categorical_features="from_dtype"`` stores (callables).
#: Extend deliberately when adding a model type.
TRUSTED_TYPES: Final[tuple[str, ...]] = (
    "numpy.dtype",  # SimpleImputer, MinMaxScaler: the fitted dtype, rebuilt from its name
    "numpy.float64",
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.dummy.DummyClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # HistGradientBoosting
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    # KNeighbors*: the fitted search tree (kd_tree or ball_tree) and its distance metric
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
)


#: Modules whose types a manifest's ``trusted_types`` may add to ``TRUSTED_TYPES``.
TRUSTABLE_PREFIXES: Final = ("sklearn.", "numpy.", "scipy.")


class BundleError(Exception):
    """A bundle that cannot be served: missing files, bad manifest, or checksum mismatch."""


@dataclass(frozen=True)
class Bundle:
    """A verified, loaded model with its manifest.

    Attributes:
        manifest: The validated manifest read from ``manifest.json``.
        model: The deserialised scikit-learn estimator.
        schema: The feature schema, ready for request parsing.
        sha256: The verified sha256 of the artifact.
        path: The bundle directory.
    """

    manifest: Manifest
    model: Any
    schema: Schema
    sha256: str
    path: Path

    @property
    def name(self) -> str:
        """Model name (the manifest's, which is also the name of the bundle's parent directory)."""
        return self.manifest.name

    @property
    def version(self) -> str:
        """Model version (the manifest's, which is also the bundle directory's name)."""
        return self.manifest.version

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self.manifest.task


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content."""
    return sha256_bytes(path.read_bytes())


def read_manifest(path: Path) -> Manifest:
    """The manifest of the bundle directory ``path``, read but not verified against an index
    or its artifact (listings, packaging, training). OSError when it cannot be read,
    ValueError when it is not JSON or not a valid manifest (ManifestError, naming the key)."""
    return Manifest.from_dict(json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8")))


def load_bundle(path: Path, indexed: VersionEntry | None = None) -> Bundle:
    """Read, verify and load one bundle directory, ``<name>/<version>``.

    Args:
        path: The bundle directory.
        indexed: The repository index's entry for it: the sha256 of both files, checked
            against the bytes read. ``None`` only where there is no index yet (the packager
            verifying a staged bundle).

    Raises:
        BundleError: if a file is missing, the manifest is invalid (the message names the key
            and the reason), a sha256 differs from the index's or the manifest's, the artifact
            contains an untrusted type or does not match the manifest's features or classes.
    """
    manifest_path = path / MANIFEST_FILE
    artifact_path = path / ARTIFACT_FILE
    try:
        manifest_bytes = manifest_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: no {MANIFEST_FILE}") from None
    if indexed is not None and sha256_bytes(manifest_bytes) != indexed.manifest_sha256:
        raise BundleError(
            f"{path}: {MANIFEST_FILE} differs from the one the repository index names "
            f"(sha256 {indexed.manifest_sha256}); refusing to load it"
        )
    try:
        manifest = Manifest.from_dict(json.loads(manifest_bytes.decode("utf-8")))
    except ManifestError as exc:
        raise BundleError(f"{path}: invalid {MANIFEST_FILE}: {exc}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise BundleError(f"{path}: {MANIFEST_FILE} is not JSON: {exc}") from None
    name, expected = manifest.name, manifest.artifact.sha256
    if (name, manifest.version) != (path.parent.name, path.name):
        raise BundleError(
            f"{path}: manifest name and version {name!r} {manifest.version!r} differ from the "
            "directory's <name>/<version>"
        )
    if indexed is not None and indexed.sha256 != expected:
        raise BundleError(
            f"{name}: the index names the artifact sha256 {indexed.sha256}, the manifest "
            f"{expected}; refusing to load it"
        )
    if manifest.artifact.file != ARTIFACT_FILE:
        raise BundleError(
            f"{path}: the artifact must be {ARTIFACT_FILE}, the manifest names "
            f"{manifest.artifact.file!r}"
        )
    schema = Schema.from_features(manifest.features)
    try:
        data = artifact_path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: no {ARTIFACT_FILE}") from None
    actual = sha256_bytes(data)
    if actual != expected:
        raise BundleError(
            f"{name}: sha256 mismatch for {artifact_path}: manifest says {expected}, "
            f"file is {actual}; refusing to load it"
        )
    # The allow-list, plus what the operator trusted by name when packaging (recorded in the
    # manifest): only scikit-learn, numpy and scipy types, so that a manifest can never trust
    # builtins or other modules whose objects could run code when rebuilt.
    extra = tuple(manifest.trusted_types or ())
    foreign = sorted(t for t in extra if not t.startswith(TRUSTABLE_PREFIXES))
    if foreign:
        raise BundleError(
            f"{name}: the manifest trusts types outside scikit-learn, numpy and scipy: {foreign}"
        )
    trusted = [*TRUSTED_TYPES, *extra]
    untrusted = set(sio.get_untrusted_types(data=data)) - set(trusted)
    if untrusted:
        raise BundleError(f"{name}: artifact contains untrusted types {sorted(untrusted)}")
    model = sio.loads(data, trusted=trusted)
    if hasattr(model, "n_features_in_") and model.n_features_in_ != schema.width:
        raise BundleError(
            f"{name}: the model expects {model.n_features_in_} features, "
            f"the manifest lists {schema.width}"
        )
    # Named columns are given in the manifest's order: they must be the ones fitted on. A
    # string feature is served as a DataFrame column, so its estimator must take named columns.
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None and schema.strings:
        strings = [f.name for _, f, _ in schema.strings]
        raise BundleError(
            f"{name}: the string features {strings} need an estimator fitted on named columns "
            "(a pandas DataFrame, so that it has feature_names_in_)"
        )
    if fitted is not None and [str(c) for c in fitted] != list(schema.names):
        raise BundleError(
            f"{name}: the model was fitted on the columns {[str(c) for c in fitted]}, "
            f"the manifest lists {list(schema.names)}"
        )
    # The Predictor maps the estimator's classes_ to answers: they must be the manifest's.
    classes = getattr(model, "classes_", None)
    labels = None if classes is None else [str(c) for c in classes]
    if manifest.target.classes is not None and labels != list(manifest.target.classes):
        raise BundleError(
            f"{name}: the model's classes {labels} differ from the manifest's "
            f"{list(manifest.target.classes)}"
        )
    return Bundle(manifest, model, schema, actual, path)
