"""What the packager derives from a fitted estimator and a sample CSV (issue 10).

Nothing here is typed by hand: the features and their order, each feature's kind and valid
range or allowed values, the task, the classes and the golden rows all come from the estimator
and the sample. Every problem is a ``PackagingError`` whose message is one line, for the CLI to
print as it is.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder
from sklearn.utils.validation import check_is_fitted

from model_server.core.bundle import sha256_bytes
from model_server.core.manifest import CategoricalFeature, Feature, NumericFeature, Task
from model_server.core.parsing.values import NUMBER_RE

#: Default widening of a numeric feature's sample range, as a fraction of its span, each side.
DEFAULT_MARGIN: Final = 0.5
GOLDEN_ROWS: Final = 5
#: Cells read as a missing value (refused: the server never receives NaN).
MISSING: Final = frozenset({"", "na", "n/a", "nan", "null", "none", "-nan"})
#: Estimator libraries that are not scikit-learn, named in their refusal.
UNSUPPORTED_LIBRARIES: Final = {
    "xgboost": "XGBoost",
    "lightgbm": "LightGBM",
    "catboost": "CatBoost",
}
#: Roots of the types the server can import (the image has these libraries, nothing else).
SERVABLE_ROOTS: Final = frozenset({"sklearn", "numpy", "scipy", "builtins"})


class PackagingError(Exception):
    """A refusal: the input cannot be packaged. The message is one line for the operator."""


def range_rule(margin: float) -> str:
    """The manifest's ``feature_range_rule`` for a margin (what the ranges mean)."""
    return (
        f"Packaged from a sample: a numeric feature's valid range is the sample's [min, max] "
        f"widened by {margin:g} of its span on each side (by 1 for a constant column), never "
        f"below 0 for a column without negative values, and to whole numbers for integer "
        f"columns, unless the operator set it; a string feature's allowed values are the "
        f"fitted encoder's categories, else the sample's values."
    )


# --------------------------------------------------------------------------------------------
# The sample


@dataclass(frozen=True)
class Sample:
    """The sample CSV: its bytes' sha256, header and rows of cell strings (as written)."""

    file: str
    sha256: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def column(self, name: str) -> list[str]:
        """The cells of one column, in row order."""
        j = self.header.index(name)
        return [row[j] for row in self.rows]

    def feature_csv(self, names: Sequence[str]) -> bytes:
        """The named columns as CSV with a header, cells unchanged: the body the server
        parses during verification, so both sides read the very same text."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        index = [self.header.index(n) for n in names]
        writer.writerows([row[j] for j in index] for row in self.rows)
        return out.getvalue().encode()


def read_sample(file: str, raw: bytes) -> Sample:
    """Parse a sample CSV (a header line, then at least one row)."""
    try:
        text = raw.decode("utf-8-sig")
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if any(r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PackagingError(f"sample {file}: not a UTF-8 CSV file: {exc}") from None
    if len(rows) < 2:
        raise PackagingError(f"sample {file}: expected a header line and at least one row")
    header = tuple(c.strip() for c in rows[0])
    if len(set(header)) != len(header):
        raise PackagingError(f"sample {file}: the header names a column more than once")
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise PackagingError(
                f"sample {file}: row {i} has {len(row)} cells; the header has {len(header)}"
            )
    body = tuple(tuple(r) for r in rows[1:])
    return Sample(file, sha256_bytes(raw), header, body)


# --------------------------------------------------------------------------------------------
# The estimator


def check_estimator(model: Any) -> Task:
    """Refuse what cannot be packaged; the task of what can."""
    kind = type(model)
    root = kind.__module__.split(".")[0]
    if root in UNSUPPORTED_LIBRARIES:
        raise PackagingError(
            f"{UNSUPPORTED_LIBRARIES[root]} objects are not supported "
            f"({kind.__module__}.{kind.__qualname__}): the server runs only scikit-learn"
        )
    if not isinstance(model, BaseEstimator):
        raise PackagingError(f"not a scikit-learn estimator: {kind.__module__}.{kind.__qualname__}")
    if not hasattr(model, "predict"):
        raise PackagingError(f"{kind.__name__} has no predict(): nothing to serve")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise PackagingError(f"the {kind.__name__} is not fitted: call fit() first") from None
    if is_classifier(model):
        classes = getattr(model, "classes_", None)
        if classes is None or np.asarray(classes).ndim != 1:
            raise PackagingError("multi-output classifiers are not supported")
        return "classification"
    if is_regressor(model):
        return "regression"
    raise PackagingError(
        f"{kind.__name__} is neither a classifier nor a regressor: nothing to serve"
    )


def refuse_unservable_types(types: Sequence[str], trusted: Sequence[str]) -> None:
    """Refuse types in an artifact that the server cannot or may not load.

    Types of other libraries (XGBoost, custom classes) are refused always, since the server
    image cannot import them; scikit-learn, numpy and scipy types outside the allow-list are
    refused unless the operator trusted them by name.
    """
    for name in types:
        root = name.split(".")[0]
        if root in UNSUPPORTED_LIBRARIES:
            raise PackagingError(
                f"{UNSUPPORTED_LIBRARIES[root]} objects are not supported ({name}): "
                "the server runs only scikit-learn"
            )
    custom = sorted(t for t in types if t.split(".")[0] not in SERVABLE_ROOTS)
    if custom:
        raise PackagingError(
            f"custom classes are not supported: {', '.join(custom)} (the server can load "
            "only scikit-learn, numpy and scipy types)"
        )
    untrusted = sorted(set(types) - set(trusted))
    if untrusted:
        raise PackagingError(
            f"the artifact contains types outside the server's allow-list: "
            f"{', '.join(untrusted)}; review them and pass TRUST_TYPES={','.join(untrusted)} "
            "to trust them (recorded in the manifest)"
        )


def _walk(model: Any) -> Iterator[Any]:
    """The fitted estimators inside ``model`` (pipelines, column transformers, unions)."""
    yield model
    if isinstance(model, Pipeline):
        parts = [step for _, step in model.steps]
    elif isinstance(model, ColumnTransformer):
        parts = [t for _, t, _ in getattr(model, "transformers_", ())]
    elif isinstance(model, FeatureUnion):
        parts = [t for _, t in model.transformer_list]
    else:
        parts = []
    for part in parts:
        if not isinstance(part, str) and part is not None:
            yield from _walk(part)


def encoder_categories(model: Any) -> dict[str, list[Any]]:
    """Input column -> categories of the fitted encoder that reads it.

    An encoder fitted on a DataFrame knows its columns (``feature_names_in_``); otherwise the
    columns a ColumnTransformer gave it by name are used, when they line up one to one.
    """
    found: dict[str, list[Any]] = {}

    def record(encoder: Any, columns: Sequence[Any] | None) -> None:
        names = getattr(encoder, "feature_names_in_", None)
        names = list(names) if names is not None else columns
        cats = getattr(encoder, "categories_", None)
        if names is None or cats is None or len(names) != len(cats):
            return
        for name, values in zip(names, cats, strict=True):
            if isinstance(name, str):
                found.setdefault(name, list(values))

    for part in _walk(model):
        if isinstance(part, ColumnTransformer):
            for _, transformer, columns in getattr(part, "transformers_", ()):
                cols = list(columns) if isinstance(columns, list | tuple | np.ndarray) else None
                for inner in _walk(transformer) if not isinstance(transformer, str) else ():
                    if isinstance(inner, OneHotEncoder | OrdinalEncoder):
                        record(inner, cols)
        elif isinstance(part, OneHotEncoder | OrdinalEncoder):
            record(part, None)
    return found


def feature_names(model: Any, sample: Sample, target: str | None) -> tuple[str, ...]:
    """The features in model column order: ``feature_names_in_``, else the sample's columns
    (without the target), which must then be as many as the model expects."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        ordered = tuple(str(n) for n in names)
    else:
        ordered = tuple(c for c in sample.header if c != target)
        expected = getattr(model, "n_features_in_", len(ordered))
        if expected != len(ordered):
            raise PackagingError(
                f"the estimator takes {expected} features and has no feature names; the "
                f"sample has {len(ordered)} columns besides the target: give it exactly the "
                "model's columns, in order"
            )
    missing = [n for n in ordered if n not in sample.header]
    if missing:
        raise PackagingError(f"sample {sample.file} is missing the feature {missing[0]!r}")
    return ordered


# --------------------------------------------------------------------------------------------
# Features


def derive_features(
    names: Sequence[str],
    sample: Sample,
    categories: Mapping[str, list[Any]],
    margin: float,
    ranges: Mapping[str, tuple[float, float]],
) -> tuple[Feature, ...]:
    """One manifest feature per name: numeric (range) or categorical (allowed strings)."""
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise PackagingError(f"RANGES names {unknown[0]!r}, which is not a feature")
    features: list[Feature] = []
    for name in names:
        cells = sample.column(name)
        for i, cell in enumerate(cells):
            if cell.strip().lower() in MISSING:
                raise PackagingError(
                    f"sample {sample.file} row {i}: feature {name!r} is missing ({cell!r}); "
                    "the sample must have a value in every feature"
                )
        numeric = all(NUMBER_RE.fullmatch(c) for c in cells)
        cats = categories.get(name)
        if numeric and not _strings(cats):
            features.append(_numeric(name, cells, sample.file, margin, ranges.get(name)))
        else:
            if name in ranges:
                raise PackagingError(f"RANGES: {name!r} is a string feature, it has no range")
            features.append(_categorical(name, cells, cats, sample.file))
    return tuple(features)


def _strings(cats: list[Any] | None) -> bool:
    return cats is not None and any(isinstance(c, str) for c in cats)


def _numeric(
    name: str, cells: list[str], file: str, margin: float, override: tuple[float, float] | None
) -> NumericFeature:
    values = np.array([float(c) for c in cells])
    if not np.all(np.isfinite(values)):
        raise PackagingError(f"sample {file}: feature {name!r} has a NaN or infinite value")
    lo, hi = float(values.min()), float(values.max())
    integral = bool(np.all(values == np.round(values)))
    if override is not None:
        low, high = override
        if not low <= lo <= hi <= high:
            raise PackagingError(
                f"RANGES: {name} [{low:g}, {high:g}] does not hold the sample's "
                f"values [{lo:g}, {hi:g}]"
            )
    else:
        pad = margin * (hi - lo) if hi > lo else 1.0
        low, high = _outward(lo - pad, hi + pad, pad)
        if lo >= 0:
            low = max(low, 0.0)  # a count or a measurement: widening never invents negatives
        if integral:
            low, high = float(math.floor(low)), float(math.ceil(high))
    return NumericFeature(
        name=name,
        type="integer" if integral else "number",
        description="",
        min=low,
        max=high,
        training_min=lo,
        training_max=hi,
    )


def _outward(low: float, high: float, pad: float) -> tuple[float, float]:
    """Round a widened range outwards to two significant digits of the padding, so a manifest
    says 1.8 and not 1.8000000000000025 (the sample's values stay inside: pad > step)."""
    if pad <= 0:
        return low, high
    digits = 1 - math.floor(math.log10(pad))
    step = 10.0**-digits
    return round(math.floor(low / step) * step, digits), round(
        math.ceil(high / step) * step, digits
    )


def _categorical(name: str, cells: list[str], cats: list[Any] | None, file: str) -> Feature:
    if cats is None:
        allowed = sorted(set(cells))
    else:
        # An encoder may have learnt NaN/None as a category (missing values): not a value a
        # client can send as a string, so it is not an allowed one.
        allowed = [str(c) for c in cats if isinstance(c, str)]
        unseen = sorted(set(cells) - set(allowed))
        if unseen:
            raise PackagingError(
                f"sample {file}: feature {name!r} has {unseen[0]!r}, which its fitted "
                "encoder does not know"
            )
    return CategoricalFeature(name=name, description="", allowed=tuple(allowed))


def model_input(features: Sequence[Feature], sample: Sample, model: Any) -> Any:
    """The sample as the estimator itself is given it: a DataFrame when it was fitted on one
    (it knows its column names), else a float64 matrix (an object matrix with strings)."""
    columns: dict[str, list[Any]] = {}
    for f in features:
        cells = sample.column(f.name)
        columns[f.name] = cells if isinstance(f, CategoricalFeature) else [float(c) for c in cells]
    if getattr(model, "feature_names_in_", None) is not None:
        import pandas as pd  # only for estimators fitted on DataFrames (not in the server image)

        return pd.DataFrame(columns)
    numeric = all(isinstance(f, NumericFeature) for f in features)
    dtype = np.float64 if numeric else object
    return np.array([columns[f.name] for f in features], dtype=dtype).T.copy()


def golden_inputs(
    features: Sequence[Feature], sample: Sample
) -> list[tuple[int, dict[str, float | str]]]:
    """Up to ``GOLDEN_ROWS`` distinct sample rows as golden-row inputs, in feature order,
    each with its row index in the sample."""
    seen: set[tuple[str, ...]] = set()
    rows: list[tuple[int, dict[str, float | str]]] = []
    columns = [sample.column(f.name) for f in features]
    for i in range(len(sample.rows)):
        key = tuple(column[i] for column in columns)
        if key in seen:
            continue
        seen.add(key)
        row: dict[str, float | str] = {}
        for f, cell in zip(features, key, strict=True):
            if isinstance(f, CategoricalFeature):
                row[f.name] = cell
            else:
                value = float(cell)
                row[f.name] = int(value) if f.type == "integer" else value
        rows.append((i, row))
        if len(rows) == GOLDEN_ROWS:
            break
    return rows
