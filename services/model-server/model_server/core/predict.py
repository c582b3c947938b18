"""Model prediction and post-processing (labels, probabilities, threshold).

A ``Predictor`` is built once per bundle at load time; it precomputes everything a request
needs (positive-class column, answer labels, the linear models' coefficients) so ``predict`` is
a few vectorised numpy operations.

Linear models are evaluated here, not through scikit-learn: ``predict_proba``/``predict`` spend
about 100 us per call on input validation (feature-name and dataframe checks, finiteness,
``check_is_fitted``), 30x the arithmetic itself, and every request's matrix has already been
validated by ``core.parsing``. The fast path runs the very operations scikit-learn runs
(``X @ coef_.T + intercept_``, then ``scipy.special.expit``), on the same arrays, so the results
are bit-for-bit scikit-learn's: ``tests/unit/test_predict_fast_path.py`` holds it to that.
Other estimators (gradient boosting) go through scikit-learn unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LinearRegression, LogisticRegression

from model_server.core.bundle import Bundle


@dataclass(frozen=True)
class Prediction:
    """The result for a batch of rows.

    Attributes:
        predictions: Per row, the answer label (classification, e.g. ``"yes"``) or the
            predicted value (regression).
        probabilities: Classification only: per row, the probability of the positive class
            (the class answered as ``target.positive_answer``); ``None`` for regression.
        counts: How many rows got each answer, for ``modelfleet_predictions_total``
            (``{"value": n}`` for regression).
    """

    predictions: list[str] | list[float]
    probabilities: list[float] | None
    counts: dict[str, int]


class Predictor:
    """Wraps a loaded bundle's estimator with the manifest's post-processing.

    Classification: ``p = predict_proba(x)[:, positive]`` and the answer is the positive label
    when ``p >= threshold`` (the manifest's ``threshold``), otherwise the negative label. Only
    binary classifiers with a ``positive_class`` and a ``threshold`` are served so far; the
    manifest can describe others (issue 10).
    Regression: the estimator's ``predict`` output.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.task = bundle.task
        self._model = bundle.model
        if self.task == "classification":
            target = bundle.manifest.target
            threshold = bundle.manifest.threshold
            classes = [str(c) for c in self._model.classes_]
            if len(classes) != 2:
                raise ValueError(f"{bundle.name}: only binary classifiers are supported")
            if target.positive_class is None or threshold is None:
                raise ValueError(
                    f"{bundle.name}: a classifier needs a positive_class and a threshold"
                )
            self._positive = classes.index(target.positive_class)
            self.threshold = float(threshold)
            self.negative_answer = target.answer(classes[1 - self._positive])
            self.positive_answer = target.answer(classes[self._positive])
            self.answer_labels: tuple[str, ...] = (self.negative_answer, self.positive_answer)
            # Index 0 -> negative answer, 1 -> positive answer (used with a bool array).
            self._answers = np.array(self.answer_labels, dtype=object)
        else:
            self.threshold = float("nan")
            self.answer_labels = ("value",)
        self._linear = linear_parts(self._model)
        """``(coef, intercept)`` for the fast path, ``None`` for other estimators."""

    def positive_proba(self, x: np.ndarray) -> np.ndarray:
        """Classifiers: the positive class's probability per row (``predict_proba``'s column)."""
        if self._linear is None:
            proba: np.ndarray = self._model.predict_proba(x)
            return proba[:, self._positive]
        coef, intercept = self._linear
        # LogisticRegression._predict_proba_lr: expit(X @ coef_.T + intercept_), stacked as
        # [1 - p, p]; the same operations on the same arrays give the same bits.
        scores: np.ndarray = x @ coef + intercept
        p: np.ndarray = expit(scores, out=scores).reshape(-1)
        return p if self._positive == 1 else 1 - p

    def values(self, x: np.ndarray) -> np.ndarray:
        """Regression: the predicted value per row (``predict``)."""
        if self._linear is None:
            values: np.ndarray = self._model.predict(x)
            return values
        coef, intercept = self._linear
        linear: np.ndarray = x @ coef + intercept  # LinearModel._decision_function
        return linear

    def predict(self, x: np.ndarray) -> Prediction:
        """Predict a validated ``(n_rows, n_features)`` float64 matrix."""
        if self.task == "classification":
            proba = self.positive_proba(x)
            if len(proba) == 1:  # one row: plain Python is cheaper than numpy's per-call cost
                p = float(proba[0])
                yes = p >= self.threshold
                answer = self.positive_answer if yes else self.negative_answer
                return Prediction(
                    predictions=[answer],
                    probabilities=[p],
                    counts={self.positive_answer: int(yes), self.negative_answer: int(not yes)},
                )
            positive = proba >= self.threshold
            n_pos = int(positive.sum())
            return Prediction(
                predictions=self._answers[positive.astype(np.intp)].tolist(),
                probabilities=proba.tolist(),
                counts={self.positive_answer: n_pos, self.negative_answer: len(proba) - n_pos},
            )
        values = self.values(x)
        return Prediction(
            predictions=values.tolist(), probabilities=None, counts={"value": len(values)}
        )


def linear_parts(model: Any) -> tuple[np.ndarray, np.ndarray | float] | None:
    """The arrays scikit-learn's own linear prediction multiplies and adds, or ``None``.

    Only the exact estimator types and shapes whose arithmetic ``Predictor`` reproduces:
    binary ``LogisticRegression`` (one coefficient row) and single-output ``LinearRegression``.
    Subclasses and anything else keep scikit-learn's path.
    """
    if type(model) is LogisticRegression and len(model.classes_) == 2 and model.coef_.ndim == 2:
        if model.coef_.shape[0] != 1:
            return None
        return model.coef_.T, model.intercept_  # the view scikit-learn uses (coef_.T)
    if type(model) is LinearRegression and model.coef_.ndim == 1:
        return model.coef_, model.intercept_
    return None
