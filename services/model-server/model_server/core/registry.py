"""The models this process serves: every version the repository's index lists, loaded at start.

``ModelRegistry.load_all`` reads the index (``model_server.repository``; in a replica the copy
gunicorn pinned when it started, see ``Settings.index_file``) and loads every listed version
from ``<repo>/<name>/<version>/``, checking the sha256 of both files against the index. A
version that fails is recorded in ``failures`` and never served; every other version is.
Readiness is per model: a model is ready when its current version loaded, and the process is
``ready`` when at least one model is. Nothing is ever loaded lazily on a request, and which
version is current never changes in a running process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from model_server.core.bundle import Bundle, BundleError, load_bundle
from model_server.core.errors import RequestError
from model_server.core.predict import Predictor
from model_server.repository import INDEX_FILE, Index, RepositoryError, read_index_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A servable model version: the verified bundle and its predictor."""

    bundle: Bundle
    predictor: Predictor

    @property
    def name(self) -> str:
        """Model name."""
        return self.bundle.name

    @property
    def version(self) -> str:
        """Model version."""
        return self.bundle.version


class ModelRegistry:
    """All model versions of one model repository.

    Args:
        model_dir: The repository: ``<name>/<version>/`` bundles and ``index.json``.
        default_model: Name of the model used when a request names none.
        index_file: The index to serve (default ``<model_dir>/index.json``).
    """

    def __init__(self, model_dir: Path, default_model: str, index_file: Path | None = None) -> None:
        self.model_dir = model_dir
        self.default_model = default_model
        self.index_file = index_file or model_dir / INDEX_FILE
        self._versions: dict[str, dict[str, LoadedModel]] = {}
        self._versions_view: Mapping[str, Mapping[str, LoadedModel]] = MappingProxyType({})
        self._current: dict[str, str] = {}
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, str] = {}
        self.ready = False
        """True once at least one model's current version is loaded and verified."""

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        """The current version of each ready model, by name (read-only view)."""
        return MappingProxyType(self._models)

    @property
    def versions(self) -> Mapping[str, Mapping[str, LoadedModel]]:
        """Every loaded version, by model name and version (read-only view)."""
        return self._versions_view

    @property
    def current(self) -> Mapping[str, str]:
        """The current version of every model in the index, loaded or not."""
        return MappingProxyType(self._current)

    @property
    def failures(self) -> Mapping[str, str]:
        """Versions that could not be loaded, as ``<name>/<version>``, with the reason."""
        return MappingProxyType(self._failures)

    @property
    def names(self) -> list[str]:
        """Sorted names of every model in the index, ready or not."""
        return sorted(self._current)

    def load_all(self) -> None:
        """Load and verify every version the index lists; set ``ready``. Never raises."""
        try:
            index = read_index_file(self.index_file)
        except RepositoryError as exc:
            log.error("cannot read the model repository's index: %s; not ready", exc)
            return
        self._load(index)
        # Built once: the listing and the OpenAPI document read it per request and per model.
        self._versions_view = MappingProxyType(
            {n: MappingProxyType(v) for n, v in self._versions.items()}
        )
        for name, version in self._current.items():
            model = self._versions.get(name, {}).get(version)
            if model is not None:
                self._models[name] = model
            else:
                log.error(
                    "model %s is not ready: its current version %s did not load", name, version
                )
        if not self._current:
            log.error("the index %s lists no models; not ready", self.index_file)
        elif self.default_model not in self._models:
            log.warning("the default model %r is not ready", self.default_model)
        self.ready = bool(self._models)

    def _load(self, index: Index) -> None:
        for name, entry in sorted(index.models.items()):
            self._current[name] = entry.current
            for version, indexed in entry.versions.items():
                key, path = f"{name}/{version}", self.model_dir / name / version
                try:
                    bundle = load_bundle(path, indexed)
                    loaded = LoadedModel(bundle, Predictor(bundle))
                except BundleError as exc:
                    self._failures[key] = str(exc)
                    log.error("refusing model %s: %s", key, exc)
                except Exception as exc:
                    self._failures[key] = f"could not load: {exc!r}"
                    log.exception("refusing model %s: could not load it", key)
                else:
                    self._versions.setdefault(name, {})[version] = loaded
                    log.info("loaded model %s sha256 %s", key, bundle.sha256)

    def get(self, name: str | None, version: str | None = None) -> LoadedModel:
        """The model called ``name`` (the default model for ``None``), in ``version`` (the
        current version for ``None``).

        Raises:
            RequestError: ``unknown_model`` (404, listing the known models or versions) or
                ``model_unavailable`` (503) for a version that failed to load.
        """
        key = self.default_model if name is None else name
        current = self._current.get(key)
        if current is None:
            known = ", ".join(sorted(self._current)) or "none"
            raise RequestError(
                "unknown_model", f"unknown model {key[:100]!r}; known models: {known}"
            )
        wanted = current if version is None else version
        model = self._versions.get(key, {}).get(wanted)
        if model is not None:
            return model
        if f"{key}/{wanted}" in self._failures:
            raise RequestError(
                "model_unavailable",
                f"model {key!r} version {wanted!r} failed verification or loading",
            )
        known = ", ".join(sorted({*self._versions.get(key, {}), current}))
        raise RequestError(
            "unknown_model",
            f"model {key!r} has no version {wanted[:40]!r}; versions: {known}",
            field="version",
        )
