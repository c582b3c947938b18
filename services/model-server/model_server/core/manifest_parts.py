"""The typed parts of a ``Manifest`` (``core.manifest``): features, target, training, files.

Each part is a frozen dataclass whose fields are in the order its keys have in the file, so
``plain`` can write any of them back as JSON data; ``read_*`` builds a part from a ``Reader``
(every key's type checked); ``check_*`` checks the relations between fields, for parts read
from a file and parts built in code alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias, cast

from model_server.core.manifest_reader import ManifestError, Reader

Task: TypeAlias = Literal["classification", "regression"]
NumericType: TypeAlias = Literal["number", "integer", "binary"]
TASKS: Final[tuple[Task, ...]] = ("classification", "regression")
NUMERIC_TYPES: Final[tuple[NumericType, ...]] = ("number", "integer", "binary")
CATEGORICAL_TYPE: Final = "string"


@dataclass(frozen=True, kw_only=True)
class NumericFeature:
    """A number with a valid range ``[min, max]``, optionally restricted to ``allowed`` codes.

    ``type`` says what the number is (``"number"``, ``"integer"`` or ``"binary"``, a 0/1
    factor); ``training_min``/``training_max`` record the range seen in the training data.
    Values keep their JSON spelling (``0`` stays an int, ``0.0`` a float) so files round-trip.
    """

    kind: ClassVar[Literal["numeric"]] = "numeric"
    name: str
    type: NumericType
    description: str
    min: float
    max: float
    training_min: float | None = None
    training_max: float | None = None
    allowed: tuple[float, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class CategoricalFeature:
    """A string from a fixed set of ``allowed`` values (``"type": "string"`` in the file)."""

    kind: ClassVar[Literal["categorical"]] = "categorical"
    name: str
    type: Literal["string"] = CATEGORICAL_TYPE
    description: str
    allowed: tuple[str, ...]


Feature: TypeAlias = NumericFeature | CategoricalFeature


@dataclass(frozen=True, kw_only=True)
class Target:
    """What the model predicts.

    Attributes:
        name: The target column's name in the training data.
        positive_class: Binary classifiers with a threshold: the class whose probability the
            threshold is applied to.
        answers: Classifiers: class label -> the label answered to clients (``pos`` -> ``yes``);
            ``None`` answers the class labels themselves.
        classes: Classifiers: the estimator's class labels, in its ``classes_`` order.
        value_quartiles: Regressors: the 25th, 50th and 75th percentiles of the model's own
            predictions on the data it was packaged with. Each answer is counted by the
            quartile bin it falls in (``q1`` below the first ... ``q4`` from the third up), so
            the rollout gates' prediction mix compares a candidate's predicted values with the
            stable version's; ``None`` counts every answer as ``value`` (nothing to compare).
    """

    name: str
    positive_class: str | None = None
    answers: Mapping[str, str] | None = None
    classes: tuple[str, ...] | None = None
    value_quartiles: tuple[float, ...] | None = None

    def answer(self, cls: str) -> str:
        """The label answered for class ``cls``."""
        return self.answers[cls] if self.answers is not None else cls


@dataclass(frozen=True, kw_only=True)
class Training:
    """How the training data was used: rows fitted on, rows held out, how they were split."""

    rows: int
    test_rows: int | None = None
    split: str


@dataclass(frozen=True, kw_only=True)
class DataFile:
    """A file the bundle was made from (the training data or a sample), with its sha256."""

    file: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """The serialised estimator: its file name inside the bundle, format and sha256."""

    file: str
    format: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class GoldenRow:
    """One input row and the output the bundle must give for it (for packaging checks).

    ``prediction`` is the answered label (classifiers) or value (regression);
    ``probabilities`` maps each class to its probability (classifiers that have them).
    """

    inputs: Mapping[str, float | str]
    prediction: str | float
    probabilities: Mapping[str, float] | None = None


# --------------------------------------------------------------------------------------------
# Reading


def read_feature(r: Reader) -> Feature:
    """One entry of ``features``; ``type`` decides its kind."""
    kind = r.choice("type", (*NUMERIC_TYPES, CATEGORICAL_TYPE))
    feature: Feature
    if kind == CATEGORICAL_TYPE:
        feature = CategoricalFeature(
            name=r.string("name"),
            description=r.string("description"),
            allowed=r.string_list("allowed"),
        )
    else:
        feature = NumericFeature(
            name=r.string("name"),
            type=cast(NumericType, kind),
            description=r.string("description"),
            min=r.number("min"),
            max=r.number("max"),
            training_min=r.opt("training_min", r.number),
            training_max=r.opt("training_max", r.number),
            allowed=r.opt("allowed", r.number_list),
        )
    r.done()
    return feature


def value_quartiles(values: Sequence[float]) -> tuple[float, float, float] | None:
    """``Target.value_quartiles`` of a regressor's predictions (rounded to 6 decimals, so a
    manifest reads the same on every machine); None for fewer than two finite values."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return None
    # "inclusive": numpy's default (linear) percentiles; no numpy import in the manifest code.
    q25, q50, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return round(q25, 6), round(q50, 6), round(q75, 6)


def read_target(r: Reader) -> Target:
    """The ``target`` object."""
    target = Target(
        name=r.string("name"),
        positive_class=r.opt("positive_class", r.string),
        answers=r.opt("answers", r.strings),
        classes=r.opt("classes", r.string_list),
        value_quartiles=r.opt("value_quartiles", r.number_list),
    )
    r.done()
    return target


def read_training(r: Reader) -> Training:
    """The ``training`` object."""
    training = Training(
        rows=r.count("rows"), test_rows=r.opt("test_rows", r.count), split=r.string("split")
    )
    r.done()
    return training


def read_data_file(r: Reader) -> DataFile:
    """The ``training_data`` object."""
    data_file = DataFile(file=r.string("file"), sha256=r.string("sha256"))
    r.done()
    return data_file


def read_artifact(r: Reader) -> Artifact:
    """The ``artifact`` object."""
    artifact = Artifact(file=r.string("file"), format=r.string("format"), sha256=r.string("sha256"))
    r.done()
    return artifact


def golden_rows_reader(r: Reader) -> Callable[[str], tuple[GoldenRow, ...]]:
    """A reader of the ``golden_rows`` list of ``r``, for ``Reader.opt``."""

    def read(key: str) -> tuple[GoldenRow, ...]:
        rows = []
        for g in r.items(key):
            rows.append(
                GoldenRow(
                    inputs=g.scalars("inputs"),
                    prediction=g.label_or_number("prediction"),
                    probabilities=g.opt("probabilities", g.numbers),
                )
            )
            g.done()
        return tuple(rows)

    return read


def plain(value: Any) -> Any:
    """Parts as the JSON data they were read from: fields in order, ``None`` fields left out,
    read-only views and tuples as dicts and lists."""
    if is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in fields(value))
        return {k: plain(v) for k, v in items if v is not None}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Relations between fields


def check_features(features: tuple[Feature, ...]) -> None:
    """At least one feature, unique names, ``min <= max``, allowed values non-empty, unique
    and (numeric) inside the range."""
    if not features:
        raise ManifestError("features", "expected at least one feature")
    seen: set[str] = set()
    for i, f in enumerate(features):
        at = f"features[{i}]"
        if not f.name:
            raise ManifestError(f"{at}.name", "expected a non-empty string")
        if f.name in seen:
            raise ManifestError(f"{at}.name", f"duplicate feature name {f.name!r}")
        seen.add(f.name)
        if f.allowed is not None and not f.allowed:
            raise ManifestError(f"{at}.allowed", "expected at least one value")
        if f.allowed is not None and len(set(f.allowed)) != len(f.allowed):
            raise ManifestError(f"{at}.allowed", "values repeat")
        if isinstance(f, NumericFeature):
            if not f.min <= f.max:
                raise ManifestError(f"{at}.max", f"{f.max} is below min {f.min}")
            for v in f.allowed or ():
                if not f.min <= v <= f.max:
                    raise ManifestError(f"{at}.allowed", f"{v} is outside [{f.min}, {f.max}]")


def check_target(
    task: Task, target: Target, threshold: float | None, threshold_note: str | None
) -> None:
    """Classes, answers and threshold fit the task: regression has none of them; a classifier
    has two or more classes, an answer for each (if any), and a threshold only when binary."""
    t = target
    if task == "regression":
        for key, value in (
            ("target.positive_class", t.positive_class),
            ("target.answers", t.answers),
            ("target.classes", t.classes),
            ("threshold", threshold),
        ):
            if value is not None:
                raise ManifestError(key, "only a classifier has one")
        q = t.value_quartiles
        if q is not None and not (
            len(q) == 3 and all(math.isfinite(v) for v in q) and q[0] <= q[1] <= q[2]
        ):
            raise ManifestError("target.value_quartiles", "expected 3 finite numbers in order")
    elif t.value_quartiles is not None:
        raise ManifestError("target.value_quartiles", "only a regressor has them")
    elif t.classes is None or len(t.classes) < 2:
        raise ManifestError("target.classes", "a classifier needs at least two classes")
    elif len(set(t.classes)) != len(t.classes):
        raise ManifestError("target.classes", "classes repeat")
    elif t.answers is not None and set(t.answers) != set(t.classes):
        raise ManifestError("target.answers", f"expected one answer per class {list(t.classes)}")
    elif t.positive_class is not None and t.positive_class not in t.classes:
        raise ManifestError("target.positive_class", f"{t.positive_class!r} is not a class")
    # The threshold is applied to the positive class's probability: a binary choice.
    if threshold is not None and (t.positive_class is None or len(t.classes or ()) != 2):
        raise ManifestError("threshold", "needs a binary target with a positive_class")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ManifestError("threshold", f"{threshold} is not a probability")
    if threshold is None and threshold_note is not None:
        raise ManifestError("threshold_note", "there is no threshold")


def check_golden_row(
    row: GoldenRow, at: str, task: Task, features: tuple[Feature, ...], target: Target
) -> None:
    """A golden row has a valid value for every feature, in order, and an output of the task's
    shape: an answer label (and per-class probabilities) or a number."""
    names = [f.name for f in features]
    if list(row.inputs) != names:
        raise ManifestError(f"{at}.inputs", f"expected the features {names}, in this order")
    for f in features:
        value = row.inputs[f.name]
        if isinstance(f, CategoricalFeature):
            ok = isinstance(value, str) and value in f.allowed
        else:
            ok = not isinstance(value, str) and f.min <= value <= f.max
            ok = ok and (f.allowed is None or value in f.allowed)
        if not ok:
            raise ManifestError(f"{at}.inputs.{f.name}", f"{value!r} is not a valid value")
    if task == "regression":
        if isinstance(row.prediction, str):
            raise ManifestError(f"{at}.prediction", "expected a number (regression)")
        if row.probabilities is not None:
            raise ManifestError(f"{at}.probabilities", "only a classifier has them")
        return
    classes = list(target.classes or ())
    if row.prediction not in {target.answer(c) for c in classes}:
        raise ManifestError(f"{at}.prediction", f"{row.prediction!r} is not an answer label")
    probabilities = row.probabilities
    if probabilities is None:
        return
    if list(probabilities) != classes:
        raise ManifestError(f"{at}.probabilities", f"expected the classes {classes}, in order")
    values = list(probabilities.values())
    if not all(0 <= p <= 1 for p in values) or not math.isclose(sum(values), 1, abs_tol=1e-6):
        raise ManifestError(f"{at}.probabilities", "expected probabilities that sum to 1")
