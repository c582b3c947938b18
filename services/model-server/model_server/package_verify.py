"""Verify a staged bundle the way the server will use it, before it enters the repository.

The bundle is loaded by the server's own ``load_bundle`` (manifest checks, sha256, skops with
the server's allow-list), the sample is parsed by the server's own CSV parser against the
bundle's schema (so both sides read the same text into the same floats), and the server's
``Predictor`` must reproduce the estimator's own outputs for every sample row, exactly: the
answers, and the probabilities bit for bit. Anything less is a ``PackagingError``.

Why the bit-exact comparison of an estimator fitted on a DataFrame is made on the server's
own matrix: BLAS may round the last bit differently with the input's memory layout and batch
size. Measured on breast cancer with StandardScaler + LogisticRegression: a row's probability is
0.6709578603706846 in a C-ordered 100-row matrix and 0.6709578603706845 alone or from a
(column-major) DataFrame. So the estimator's answers on its DataFrame must equal the server's,
and its probabilities and values on the very matrix the server built must equal the server's
to the bit; the numbers in both inputs are checked to be the same floats first.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_server.core.bundle import BundleError, load_bundle
from model_server.core.errors import RequestError
from model_server.core.manifest import Manifest, NumericFeature
from model_server.core.parsing.csv_body import parse_csv
from model_server.core.predict import Predictor
from model_server.package_derive import PackagingError, Sample


@dataclass(frozen=True)
class Expected:
    """The estimator's own outputs on the sample.

    Attributes:
        answers: Per row, the answered label (classifiers) or value (regression).
        proba: Classifiers with ``predict_proba``: one row of class probabilities per row.
        classes: Classifiers: the class labels, in ``classes_`` order.
        labels: Classifiers: per row, the class label (before ``answers`` maps it).
    """

    answers: list[str] | list[float]
    proba: np.ndarray | None
    classes: tuple[str, ...]
    labels: list[str]


def verify(
    staged: Path,
    manifest: Manifest,
    sample: Sample,
    expected: Expected,
    own: Callable[[Any], Expected] | None = None,
) -> None:
    """Load ``staged`` as the server does and compare its predictions on the sample.

    ``expected`` is the estimator's output on the packager's own reading of the sample;
    ``own`` (for estimators fitted on a DataFrame) computes it on the server's matrix.
    """
    try:
        bundle = load_bundle(staged)
    except BundleError as exc:
        raise PackagingError(f"the server's loader refuses the bundle: {exc}") from None
    try:
        predictor = Predictor(bundle)
    except ValueError as exc:
        raise PackagingError(f"the server cannot serve this model yet: {exc}") from None
    body = sample.feature_csv(manifest.feature_names)
    try:
        x = parse_csv(body, bundle.schema, max_rows=len(sample.rows))
    except RequestError as exc:
        raise PackagingError(f"the server refuses the sample: {exc}") from None
    numeric = all(isinstance(f, NumericFeature) for f in manifest.features)
    if numeric and isinstance(x, np.ndarray):
        mine = np.column_stack(
            [[float(c) for c in sample.column(n)] for n in manifest.feature_names]
        )
        if not np.array_equal(x, mine):
            raise PackagingError(
                "the server reads the sample's numbers as other floats than Python"
            )
    with warnings.catch_warnings():
        # An estimator fitted on a DataFrame but given a matrix (the linear fast path's input)
        # warns that it has no column names, once per call; the columns are in its order.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        result = predictor.predict(x)
        if own is not None:
            labels = expected.answers if expected.classes else None
            # The estimator's own outputs on exactly what the server gives it (a named
            # DataFrame for models fitted on one), so the comparison can be bit for bit.
            expected = own(predictor.model_input(x))
            if labels is not None:
                _compare_answers(result.predictions, labels)
    _compare_answers(result.predictions, expected.answers)
    if expected.proba is not None and result.probabilities is not None:
        positive = manifest.target.positive_class
        _compare_probabilities(result.probabilities, expected.proba, expected.classes, positive)


def _compare_answers(served: Sequence[Any], own: Sequence[Any]) -> None:
    if len(served) != len(own):
        raise PackagingError(f"the server answered {len(served)} rows of {len(own)}")
    for i, (a, b) in enumerate(zip(served, own, strict=True)):
        # Exact: the same float64 bits (regression) or the same label (classifiers).
        if type(a) is not type(b) or a != b:
            raise PackagingError(
                f"sample row {i}: the server answers {a!r}, the estimator itself {b!r}"
            )


def _compare_probabilities(
    served: Sequence[Any], proba: np.ndarray, classes: Sequence[str], positive: str | None
) -> None:
    """Exact equality with ``predict_proba``, whatever shape the server gives: the positive
    class's probability (binary), a row of class probabilities, or class -> probability."""
    for i, got in enumerate(served):
        own: Any
        if isinstance(got, dict):
            own = {c: float(p) for c, p in zip(classes, proba[i], strict=True)}
        elif isinstance(got, list | tuple):
            own = [float(p) for p in proba[i]]
        else:
            column = classes.index(positive) if positive is not None else 1
            own = float(proba[i, column])
        if got != own:
            raise PackagingError(
                f"sample row {i}: the server's probabilities {got!r} differ from the "
                f"estimator's own {own!r}"
            )
