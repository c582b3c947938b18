"""The packager's exactness check: the server's outputs must be the estimator's own, bit for bit.

Whatever shape the server gives probabilities in (the positive class's, a row per class, or
class -> probability), one differing bit in one row is a refusal naming the row.
"""

from __future__ import annotations

import numpy as np
import pytest
from model_server.package_derive import PackagingError
from model_server.package_verify import _compare_answers, _compare_probabilities

PROBA = np.array([[0.25, 0.75], [0.6, 0.4]])
CLASSES = ("neg", "pos")


def test_answers_must_be_equal_in_value_and_type() -> None:
    _compare_answers(["no", "yes"], ["no", "yes"])
    _compare_answers([1.5, 2.0], [1.5, 2.0])
    with pytest.raises(PackagingError, match=r"^sample row 1: the server answers 'no', the est"):
        _compare_answers(["no", "no"], ["no", "yes"])
    with pytest.raises(PackagingError, match=r"^sample row 0: the server answers 2, the estima"):
        _compare_answers([2], [2.0])  # an int where the estimator gave a float
    with pytest.raises(PackagingError, match=r"^the server answered 1 rows of 2$"):
        _compare_answers(["no"], ["no", "yes"])


@pytest.mark.parametrize(
    "served",
    [
        [0.75, 0.4],  # today's Predictor: the positive class's probability
        [[0.25, 0.75], [0.6, 0.4]],  # a row of class probabilities
        [{"neg": 0.25, "pos": 0.75}, {"neg": 0.6, "pos": 0.4}],  # class -> probability
    ],
)
def test_probabilities_in_any_shape_must_be_equal_to_the_bit(served: list[object]) -> None:
    _compare_probabilities(served, PROBA, CLASSES, "pos")
    off = np.nextafter(PROBA, 1.0)  # one bit up, everywhere
    with pytest.raises(PackagingError, match=r"^sample row 0: the server's probabilities"):
        _compare_probabilities(served, off, CLASSES, "pos")
