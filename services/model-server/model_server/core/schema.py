"""Feature schema of a model, prepared once at load time for the request hot path.

A feature is numeric (a float in a range, optionally from a set of codes) or a string from a
fixed set of categories. A schema with only numeric features parses to a float64 matrix, as
it always has; one with a string feature parses to an object matrix (``Schema.strings``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

from model_server.core.manifest import CategoricalFeature, NumericFeature


@dataclass(frozen=True)
class Feature:
    """One model input, as declared in the manifest.

    Attributes:
        name: Column name, also the key clients send.
        type: ``"number"``, ``"integer"`` or ``"binary"``; informational except that
            ``allowed`` (if set) restricts the values exactly. ``"string"`` for a string
            feature.
        min: Smallest valid value (inclusive); ``-inf`` for a string feature.
        max: Largest valid value (inclusive); ``inf`` for a string feature.
        allowed: For numeric codes, the only accepted values (e.g. ``[0, 1]``).
        description: What the column means, for the docs and model metadata.
        categories: For a string feature, the only accepted strings; ``None`` for numbers.
    """

    name: str
    type: str
    min: float
    max: float
    allowed: tuple[float, ...] | None = None
    description: str = ""
    categories: tuple[str, ...] | None = None

    @property
    def is_string(self) -> bool:
        """True for a string feature (a manifest ``CategoricalFeature``)."""
        return self.categories is not None

    @classmethod
    def from_spec(cls, spec: NumericFeature | CategoricalFeature) -> Feature:
        """The parsing view of a manifest feature: bounds and allowed codes as floats, or the
        allowed strings of a categorical feature."""
        if isinstance(spec, CategoricalFeature):
            return cls(
                name=spec.name,
                type=spec.type,
                min=-math.inf,
                max=math.inf,
                description=spec.description,
                categories=tuple(spec.allowed),
            )
        return cls(
            name=spec.name,
            type=spec.type,
            min=float(spec.min),
            max=float(spec.max),
            allowed=None if spec.allowed is None else tuple(float(v) for v in spec.allowed),
            description=spec.description,
        )

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any]) -> Feature:
        """Build from a feature given as a plain dict (tests, tools): only ``name``, ``min``
        and ``max`` are required (``"type": "string"`` with ``allowed`` strings instead makes
        a string feature). Bundles go through ``Manifest``, which validates them."""
        allowed = spec.get("allowed")
        if spec.get("type") == "string":
            return cls(
                name=str(spec["name"]),
                type="string",
                min=-math.inf,
                max=math.inf,
                description=str(spec.get("description", "")),
                categories=tuple(str(v) for v in allowed or ()),
            )
        return cls(
            name=str(spec["name"]),
            type=str(spec.get("type", "number")),
            min=float(spec["min"]),
            max=float(spec["max"]),
            allowed=tuple(float(v) for v in allowed) if allowed is not None else None,
            description=str(spec.get("description", "")),
        )


@dataclass(frozen=True)
class Schema:
    """The ordered features of a model plus lookups precomputed for parsing.

    Everything a request needs (name -> column index, range vectors) is built here once,
    so parsing a request does no per-request set-up beyond the data itself.
    """

    features: tuple[Feature, ...]
    names: tuple[str, ...] = field(init=False)
    index: Mapping[str, int] = field(init=False)
    name_set: frozenset[str] = field(init=False)
    lows: np.ndarray = field(init=False, repr=False)
    highs: np.ndarray = field(init=False, repr=False)
    # Column indices that have an ``allowed`` set, with that set as an array.
    categorical: tuple[tuple[int, np.ndarray], ...] = field(init=False, repr=False)
    # ``itemgetter(*names)``: a record's values in feature order, in C (width >= 2 only).
    getter: Any = field(init=False, repr=False, compare=False)
    # For ``row_ok``: (low, high) per column as Python floats, and the categorical sets.
    _bounds: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    _allowed: tuple[tuple[int, frozenset[float]], ...] = field(
        init=False, repr=False, compare=False
    )
    # String features: (column index, feature, allowed strings). Empty for numeric models,
    # which keeps every numeric fast path exactly as it was.
    strings: tuple[tuple[int, Feature, frozenset[str]], ...] = field(init=False, repr=False)
    string_names: frozenset[str] = field(init=False, repr=False)
    # With string features: the numeric columns' indices and a schema of those features
    # alone, which validates them with the numeric code (``None`` without string features).
    numeric_columns: tuple[int, ...] = field(init=False, repr=False)
    numeric_part: Schema | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in self.features)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {names}")
        # frozen dataclass: assign derived fields through object.__setattr__.
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "index", {n: i for i, n in enumerate(names)})
        object.__setattr__(self, "name_set", frozenset(names))
        object.__setattr__(self, "lows", np.array([f.min for f in self.features], dtype=np.float64))
        object.__setattr__(
            self, "highs", np.array([f.max for f in self.features], dtype=np.float64)
        )
        object.__setattr__(
            self,
            "categorical",
            tuple(
                (i, np.array(f.allowed, dtype=np.float64))
                for i, f in enumerate(self.features)
                if f.allowed is not None
            ),
        )
        object.__setattr__(self, "getter", itemgetter(*names) if len(names) > 1 else None)
        bounds = tuple((f.min, f.max) for f in self.features)
        # Finite bounds make "lo <= v <= hi" imply a finite v (NaN fails every comparison).
        finite = all(math.isfinite(b) for pair in bounds for b in pair)
        object.__setattr__(self, "_bounds", bounds if finite else ())
        object.__setattr__(
            self,
            "_allowed",
            tuple(
                (i, frozenset(f.allowed))
                for i, f in enumerate(self.features)
                if f.allowed is not None
            ),
        )

        strings = tuple(
            (i, f, frozenset(f.categories))
            for i, f in enumerate(self.features)
            if f.categories is not None
        )
        object.__setattr__(self, "strings", strings)
        object.__setattr__(self, "string_names", frozenset(f.name for _, f, _ in strings))
        numeric = tuple(i for i, f in enumerate(self.features) if f.categories is None)
        object.__setattr__(self, "numeric_columns", numeric)
        object.__setattr__(
            self,
            "numeric_part",
            Schema(tuple(self.features[i] for i in numeric)) if strings else None,
        )

    def row_ok(self, row: Sequence[float]) -> bool:
        """True if one row (feature order) is finite, inside every range and allowed set.

        A pure-Python check for single-row requests, where numpy's per-call overhead is larger
        than the work. ``False`` means "not proven valid": the caller then runs the full
        vectorised check, which also names the offending cell.
        """
        bounds = self._bounds
        if len(row) != len(bounds):  # also: no fast path when a bound is infinite
            return False
        for v, (lo, hi) in zip(row, bounds, strict=True):
            if not lo <= v <= hi:
                return False
        return all(row[c] in allowed for c, allowed in self._allowed)

    @property
    def width(self) -> int:
        """Number of features, i.e. columns of the model's input matrix."""
        return len(self.features)

    @classmethod
    def from_features(cls, specs: Sequence[NumericFeature | CategoricalFeature]) -> Schema:
        """Build from a manifest's features (order = model column order)."""
        return cls(tuple(Feature.from_spec(s) for s in specs))

    @classmethod
    def from_manifest(cls, specs: Sequence[Mapping[str, Any]]) -> Schema:
        """Build from features given as plain dicts (tests, tools), in model column order."""
        return cls(tuple(Feature.from_manifest(s) for s in specs))
