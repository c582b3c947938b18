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
Other estimators (gradient boosting, pipelines, any supported scikit-learn estimator) go
through scikit-learn's own ``predict``/``predict_proba`` unchanged, after the request has been
parsed and validated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from model_server.core.bundle import Bundle
from model_server.core.golden import check_golden_rows

#: What a regressor's answers are counted as, by quartile bin of its reference predictions.
VALUE_BINS = ("q1", "q2", "q3", "q4")


@dataclass(frozen=True)
class Prediction:
    """The result for a batch of rows, defined once for every protocol's rendering.

    Attributes:
        predictions: Per row, the answer label (classification, e.g. ``"yes"`` or
            ``"setosa"``) or the predicted value (regression).
        probabilities: Binary classifiers with a manifest ``threshold``: per row, the
            probability of the positive class, the number the threshold was applied to;
            ``None`` otherwise.
        counts: How many rows got each answer, for ``modelfleet_predictions_total``
            (regression: per quartile bin, ``{"q1": n1, ...}``, or ``{"value": n}`` without
            the manifest's ``value_quartiles``).
        classification: Whether ``predictions`` are answer labels.
        class_probabilities: Classifiers without a threshold that have ``predict_proba``: per
            row, one probability per class, in ``labels`` order; ``None`` otherwise.
        labels: The answer label of each column of ``class_probabilities``.
    """

    predictions: list[str] | list[float]
    probabilities: list[float] | None
    counts: dict[str, int]
    classification: bool = False
    class_probabilities: list[list[float]] | None = None
    labels: tuple[str, ...] = ()

    def per_class(self) -> list[dict[str, float]] | None:
        """``class_probabilities`` as one ``{answer label: probability}`` mapping per row."""
        if self.class_probabilities is None:
            return None
        labels = self.labels
        return [dict(zip(labels, row, strict=True)) for row in self.class_probabilities]


class Predictor:
    """Wraps a loaded bundle's estimator with the manifest's post-processing.

    Classification with a manifest ``threshold`` (binary, with a ``positive_class``):
    ``p = predict_proba(x)[:, positive]`` and the answer is the positive label when
    ``p >= threshold``, otherwise the negative label (the seed diabetes models).
    Any other classifier: the answer is the estimator's own ``predict``, mapped through the
    manifest's ``answers`` (if any), with ``predict_proba``'s per-class probabilities when the
    estimator has it; both are called, as ``predict`` is not always the most probable class
    (``SVC``).
    Regression: the estimator's ``predict`` output.

    Input: a validated float64 matrix, or an object matrix for a model with string features.
    An estimator fitted on named columns, and any model with a string feature, is given a
    pandas DataFrame with the manifest's column names (float64 numbers, string categories):
    a ColumnTransformer that selects columns by name needs one. Numeric models fitted on
    arrays (the seed models) keep the plain matrix, and pandas is then never imported.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.task = bundle.task
        self._model = bundle.model
        target = bundle.manifest.target
        self.threshold = float("nan")
        #: Answer per class, in the estimator's ``classes_`` order (``()`` for regression).
        self.class_labels: tuple[str, ...] = ()
        #: Whether predictions carry per-class probabilities (``Prediction.class_probabilities``).
        self.per_class = False
        self._quartiles: np.ndarray | None = None
        self.thresholded = self.task == "classification" and bundle.manifest.threshold is not None
        if self.thresholded:
            threshold = bundle.manifest.threshold
            classes = [str(c) for c in self._model.classes_]
            if len(classes) != 2 or target.positive_class is None or threshold is None:
                raise ValueError(f"{bundle.name}: a threshold needs a binary positive_class")
            self._positive = classes.index(target.positive_class)
            self.threshold = float(threshold)
            self.negative_answer = target.answer(classes[1 - self._positive])
            self.positive_answer = target.answer(classes[self._positive])
            self.answer_labels: tuple[str, ...] = (self.negative_answer, self.positive_answer)
            self.class_labels = tuple(target.answer(c) for c in classes)
            # Index 0 -> negative answer, 1 -> positive answer (used with a bool array).
            self._answers = np.array(self.answer_labels, dtype=object)
        elif self.task == "classification":
            raw = self._model.classes_.tolist()
            self.class_labels = tuple(target.answer(str(c)) for c in raw)
            self.answer_labels = self.class_labels
            # predict returns classes_ values: their Python forms are the keys.
            self._answer_of = dict(zip(raw, self.class_labels, strict=True))
            self.per_class = hasattr(self._model, "predict_proba")
            self._split = pipeline_split(self._model) if self.per_class else None
        else:
            # Regressors are counted by quartile bin of their reference predictions (the
            # manifest's value_quartiles), so the prediction-mix gate compares distributions.
            quartiles = target.value_quartiles
            if quartiles is not None:
                self._quartiles = np.asarray(quartiles, dtype=np.float64)
            self.answer_labels = VALUE_BINS if quartiles is not None else ("value",)
        self._linear = linear_parts(self._model)
        """``(coef, intercept)`` for the fast path, ``None`` for other estimators."""
        schema = bundle.schema
        self._frame: Any = None
        if schema.strings or hasattr(self._model, "feature_names_in_"):
            self._frame = frame_builder(schema.names, schema.numeric_columns)
        check_golden_rows(self)  # a model that does not give the manifest's answers is refused

    def model_input(self, x: np.ndarray) -> Any:
        """What the estimator's own methods take: ``x``, or ``x`` as a named DataFrame."""
        return x if self._frame is None else self._frame(x)

    def positive_proba(self, x: np.ndarray) -> np.ndarray:
        """Classifiers: the positive class's probability per row (``predict_proba``'s column)."""
        if self._linear is None:
            proba: np.ndarray = self._model.predict_proba(self.model_input(x))
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
            values: np.ndarray = self._model.predict(self.model_input(x))
            return values
        coef, intercept = self._linear
        linear: np.ndarray = x @ coef + intercept  # LinearModel._decision_function
        return linear

    def predict(self, x: np.ndarray) -> Prediction:
        """Predict a validated ``(n_rows, n_features)`` matrix (see ``core.parsing``)."""
        if self.thresholded:
            return self._thresholded(x)
        if self.task == "classification":
            return self._classify(x)
        values = self.values(x)
        return Prediction(
            predictions=values.tolist(), probabilities=None, counts=self._value_counts(values)
        )

    def _value_counts(self, values: np.ndarray) -> dict[str, int]:
        """Regression answers per quartile bin (``q1``: below the first quartile, ...,
        ``q4``: from the third up; NaN counts in ``q4``), or all as ``value``."""
        if self._quartiles is None:
            return {"value": len(values)}
        bins = np.bincount(np.searchsorted(self._quartiles, values, side="right"), minlength=4)
        return dict(zip(VALUE_BINS, bins.tolist(), strict=True))

    def _thresholded(self, x: np.ndarray) -> Prediction:
        proba = self.positive_proba(x)
        if len(proba) == 1:  # one row: plain Python is cheaper than numpy's per-call cost
            p = float(proba[0])
            yes = p >= self.threshold
            answer = self.positive_answer if yes else self.negative_answer
            return Prediction(
                predictions=[answer],
                probabilities=[p],
                counts={self.positive_answer: int(yes), self.negative_answer: int(not yes)},
                classification=True,
            )
        positive = proba >= self.threshold
        n_pos = int(positive.sum())
        return Prediction(
            predictions=self._answers[positive.astype(np.intp)].tolist(),
            probabilities=proba.tolist(),
            counts={self.positive_answer: n_pos, self.negative_answer: len(proba) - n_pos},
            classification=True,
        )

    def _classify(self, x: np.ndarray) -> Prediction:
        if self._linear is not None:
            return self._classify_linear(x, *self._linear)
        data = self.model_input(x)
        model = self._model
        if self._split is not None:
            # Pipeline.predict and predict_proba both transform the rows, then call the final
            # step: transforming once and calling the final step's two methods is the very
            # same work, done once (the transformers are most of a pipeline's cost).
            head, model = self._split
            data = head.transform(data)
        answer_of = self._answer_of
        answers = [answer_of[c] for c in model.predict(data).tolist()]
        proba = model.predict_proba(data).tolist() if self.per_class else None
        return Prediction(
            predictions=answers,
            probabilities=None,
            counts=dict(Counter(answers)),
            classification=True,
            class_probabilities=proba,
            labels=self.class_labels,
        )

    def _classify_linear(
        self, x: np.ndarray, coef: np.ndarray, intercept: np.ndarray | float
    ) -> Prediction:
        """A binary LogisticRegression's predict and predict_proba, scikit-learn's arithmetic
        on the matrix itself: its own methods would first build a DataFrame and validate it
        twice, ten times the cost of the prediction for one row (measured: 1.7 ms against
        0.2 ms per plumber request)."""
        # LinearClassifierMixin.predict: classes_[decision > 0]; _predict_proba_lr: the
        # decision's expit p, stacked as [1 - p, p]. The same operations on the same arrays.
        scores: np.ndarray = (x @ coef + intercept).reshape(-1)
        negative, positive = self.class_labels
        answers = [positive if s else negative for s in (scores > 0).tolist()]
        p: np.ndarray = expit(scores)
        return Prediction(
            predictions=answers,
            probabilities=None,
            counts=dict(Counter(answers)),
            classification=True,
            class_probabilities=np.vstack([1 - p, p]).T.tolist() if self.per_class else None,
            labels=self.class_labels,
        )


def pipeline_split(model: Any) -> tuple[Any, Any] | None:
    """``(all steps but the last, the last step)`` of a ``Pipeline`` of two or more steps, else
    ``None``. Exact type only: a subclass may predict differently."""
    if type(model) is not Pipeline or len(model.steps) < 2:
        return None
    return model[:-1], model.steps[-1][1]


def frame_builder(names: tuple[str, ...], numeric: tuple[int, ...]) -> Callable[[np.ndarray], Any]:
    """A function from a validated matrix to a DataFrame with the features' names and dtypes:
    float64 for numbers, strings for string features.

    pandas is imported here, not at the top, because only these models use it; the memory is
    paid anyway: scikit-learn imports pandas itself whenever it is installed
    (``sklearn.utils.fixes``), about 29 MB RSS per worker process (measured November 2026:
    151 MB without pandas, 180 MB with, for numpy, scipy, scikit-learn, skops and flask)."""
    import pandas as pd

    numeric_set = frozenset(numeric)

    def build(x: np.ndarray) -> Any:
        if x.dtype == np.float64:
            return pd.DataFrame(x, columns=list(names), copy=False)
        return pd.DataFrame(
            {
                name: x[:, j].astype(np.float64) if j in numeric_set else x[:, j]
                for j, name in enumerate(names)
            }
        )

    return build


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
