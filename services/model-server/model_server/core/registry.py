"""The set of models this process serves, loaded eagerly at start-up.

``ModelRegistry.load_all`` reads every bundle directory under the model directory once.
A bundle that fails verification is recorded in ``failures`` and never served; the registry
is ``ready`` only when every bundle loaded and the default model is among them. Nothing is
ever loaded lazily on a request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from model_server.core.bundle import MANIFEST_FILE, Bundle, BundleError, load_bundle
from model_server.core.errors import RequestError
from model_server.core.predict import Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A servable model: the verified bundle and its predictor."""

    bundle: Bundle
    predictor: Predictor

    @property
    def name(self) -> str:
        """Model name."""
        return self.bundle.name


class ModelRegistry:
    """All models of one model directory.

    Args:
        model_dir: Directory holding one bundle directory per model.
        default_model: Name of the model used when a request names none.
    """

    def __init__(self, model_dir: Path, default_model: str) -> None:
        self.model_dir = model_dir
        self.default_model = default_model
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, str] = {}
        self.ready = False
        """True once every bundle is loaded and verified and the default model exists."""

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        """Loaded models by name (read-only view)."""
        return MappingProxyType(self._models)

    @property
    def failures(self) -> Mapping[str, str]:
        """Bundles that could not be loaded, by name, with the reason."""
        return MappingProxyType(self._failures)

    @property
    def names(self) -> list[str]:
        """Sorted names of every bundle found, loaded or failed."""
        return sorted({*self._models, *self._failures})

    def load_all(self) -> None:
        """Load and verify every bundle in ``model_dir``; set ``ready``. Never raises."""
        if not self.model_dir.is_dir():
            log.error("model directory %s does not exist; not ready", self.model_dir)
            return
        for path in sorted(p for p in self.model_dir.iterdir() if (p / MANIFEST_FILE).is_file()):
            try:
                bundle = load_bundle(path)
                self._models[bundle.name] = LoadedModel(bundle, Predictor(bundle))
            except BundleError as exc:
                self._failures[path.name] = str(exc)
                log.error("refusing model %s: %s", path.name, exc)
            except Exception as exc:
                self._failures[path.name] = f"could not load: {exc!r}"
                log.exception("refusing model %s: could not load it", path.name)
            else:
                log.info(
                    "loaded model %s version %s sha256 %s",
                    bundle.name,
                    bundle.version,
                    bundle.sha256,
                )
        if not self._models and not self._failures:
            log.error("no model bundles found in %s; not ready", self.model_dir)
        elif self.default_model not in self._models:
            log.error("default model %r is not loaded; not ready", self.default_model)
        self.ready = (
            bool(self._models) and not self._failures and self.default_model in self._models
        )

    def get(self, name: str | None) -> LoadedModel:
        """The model called ``name`` (the default model for ``None``).

        Raises:
            RequestError: ``unknown_model`` (404, listing the known models) or
                ``model_unavailable`` (503) for a bundle that failed to load.
        """
        key = self.default_model if name is None else name
        model = self._models.get(key)
        if model is not None:
            return model
        if key in self._failures:
            raise RequestError("model_unavailable", f"model {key!r} failed verification or loading")
        known = ", ".join(sorted(self._models)) or "none"
        raise RequestError("unknown_model", f"unknown model {key[:100]!r}; known models: {known}")
