"""The classifier at the end of the pipeline, applied to the compiled numeric rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from churnctl.serving.encoders import CompileError
from churnctl.serving.trees import TreesHead


def expit(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


class LinearHead:
    """LogisticRegression: sigmoid(x . w + b)."""

    kind = "linear"

    def __init__(self, estimator: Any) -> None:
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.shape[0] != 1:
            raise CompileError("logistic regression is not binary")
        self.weights = coef[0]
        self.bias = float(np.asarray(estimator.intercept_).ravel()[0])

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return expit(matrix @ self.weights + self.bias)


class EstimatorHead:
    """Any other binary classifier, called on the compiled numeric matrix."""

    kind = "numpy"

    def __init__(self, estimator: Any) -> None:
        if not hasattr(estimator, "predict_proba"):
            raise CompileError(f"{type(estimator).__name__} has no predict_proba")
        if hasattr(estimator, "feature_names_in_"):
            raise CompileError(f"{type(estimator).__name__} was fitted on a DataFrame")
        self.estimator = estimator

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(matrix)[:, 1]


def build_head(estimator: Any) -> LinearHead | TreesHead | EstimatorHead:
    classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) != 2:
        raise CompileError(f"{type(estimator).__name__} is not a fitted binary classifier")
    special = {"LogisticRegression": LinearHead, "HistGradientBoostingClassifier": TreesHead}
    head = special.get(type(estimator).__name__)
    if head is not None:
        try:
            return head(estimator)
        except (CompileError, AttributeError, KeyError, IndexError, TypeError):
            pass  # sklearn internals changed: the estimator's own predict still works
    return EstimatorHead(estimator)
