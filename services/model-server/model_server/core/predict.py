"""Model prediction and post-processing (labels, probabilities, threshold).

A ``Predictor`` is built once per bundle at load time; it precomputes everything a request
needs (positive-class column, answer labels) so ``predict`` is just the estimator call plus a
few vectorised numpy operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    when ``p >= threshold`` (the manifest's ``threshold``), otherwise the negative label.
    Regression: the estimator's ``predict`` output.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.task = bundle.task
        self._model = bundle.model
        if self.task == "classification":
            target = bundle.manifest["target"]
            classes = [str(c) for c in self._model.classes_]
            self._positive = classes.index(str(target["positive_class"]))
            if len(classes) != 2:
                raise ValueError(f"{bundle.name}: only binary classifiers are supported")
            self.threshold = float(bundle.manifest["threshold"])
            answers = target["answers"]  # class label -> answered label
            self.negative_answer = str(answers[classes[1 - self._positive]])
            self.positive_answer = str(answers[classes[self._positive]])
            self.answer_labels: tuple[str, ...] = (self.negative_answer, self.positive_answer)
            # Index 0 -> negative answer, 1 -> positive answer (used with a bool array).
            self._answers = np.array(self.answer_labels, dtype=object)
        else:
            self.threshold = float("nan")
            self.answer_labels = ("value",)

    def predict(self, x: np.ndarray) -> Prediction:
        """Predict a validated ``(n_rows, n_features)`` float64 matrix."""
        if self.task == "classification":
            proba = self._model.predict_proba(x)[:, self._positive]
            positive = proba >= self.threshold
            n_pos = int(positive.sum())
            return Prediction(
                predictions=self._answers[positive.astype(np.intp)].tolist(),
                probabilities=proba.tolist(),
                counts={self.positive_answer: n_pos, self.negative_answer: len(proba) - n_pos},
            )
        values = self._model.predict(x)
        return Prediction(
            predictions=values.tolist(), probabilities=None, counts={"value": len(values)}
        )
