"""Golden rows: the outputs a bundle's manifest says its model gives, checked when it loads.

A manifest may record a few input rows with the answers and probabilities the packaged model
gave for them (``Manifest.golden_rows``). ``check_golden_rows`` runs them through the same
parsing and ``Predictor`` as a request, so an artifact that is not the manifest's model (swapped,
or made with an estimator that predicts differently here) is refused at load time instead of
answering wrongly. Answer labels must be equal; numbers equal to within 1e-9 relative, because
a batch and a single row may be summed in another order by BLAS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from model_server.core.errors import RequestError
from model_server.core.manifest import GoldenRow
from model_server.core.parsing import parse_records

if TYPE_CHECKING:  # the Predictor runs the check when it is built: no import cycle at run time
    from model_server.core.predict import Prediction, Predictor

_REL_TOL = 1e-9


class GoldenRowMismatch(ValueError):
    """A golden row the loaded model does not reproduce; the message names the row."""


def check_golden_rows(predictor: Predictor) -> None:
    """Predict the manifest's golden rows (if any) and compare them with the recorded outputs.

    Raises:
        GoldenRowMismatch: naming the first row whose input is refused or whose answer or
            probabilities differ.
    """
    rows: Sequence[GoldenRow] = predictor.bundle.manifest.golden_rows or ()
    if not rows:
        return
    schema = predictor.bundle.schema
    try:
        x = parse_records([dict(r.inputs) for r in rows], schema, len(rows))
    except RequestError as exc:
        raise GoldenRowMismatch(f"a golden row is not a valid request: {exc.message}") from None
    result = predictor.predict(x)
    for i, row in enumerate(rows):
        _compare(i, row, result, predictor)


def _close(a: float | str, b: float | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def _compare(i: int, row: GoldenRow, result: Prediction, predictor: Predictor) -> None:
    got = result.predictions[i]
    if not _close(got, row.prediction):
        raise GoldenRowMismatch(
            f"golden_rows[{i}]: the model answers {got!r}, the manifest says {row.prediction!r}"
        )
    if row.probabilities is None:
        return
    recorded = list(row.probabilities.values())  # in the manifest's classes order
    if result.class_probabilities is not None:
        actual = result.class_probabilities[i]
    elif result.probabilities is not None:
        # Thresholded binary models give P(positive class) only: compare that class's value.
        classes = list(row.probabilities)
        positive = predictor.bundle.manifest.target.positive_class
        p = result.probabilities[i]
        actual = [p if c == positive else 1 - p for c in classes]
    else:
        raise GoldenRowMismatch(f"golden_rows[{i}]: the model gives no probabilities")
    if len(actual) != len(recorded) or not all(map(_close, actual, recorded)):
        raise GoldenRowMismatch(
            f"golden_rows[{i}]: the model's probabilities {actual} differ from the "
            f"manifest's {recorded}"
        )
