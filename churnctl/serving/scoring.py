"""Fast scoring: a fitted sklearn pipeline compiled into lookup tables and numpy arrays.

The original API rebuilt a DataFrame and ran the whole pipeline per request (23 req/s): a
ColumnTransformer costs milliseconds per call and HistGradientBoosting ~1 ms for one row, as it
dispatches OpenMP work per tree. Here the fitted steps are read once (scaler offsets, one-hot
tables, flattened trees) and scoring a row is a few dict look-ups and numpy operations.

Whatever cannot be compiled, and any compiled model whose output differs from the pipeline's own
on sample rows, falls back to the pipeline: never a wrong answer for speed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.model import ChurnModel
from churnctl.serving.layout import CompileError, Layout, UnknownCategory, compile_layout

__all__ = ["CompileError", "Scorer", "UnknownCategory", "compile_scorer"]

TOLERANCE = 1e-9  # max difference from the pipeline's probability on verification rows
CHUNK_ROWS = 65_536  # rows per dense block in frame scoring: bounds memory for big batches
TREES_MAX_ROWS = 64  # above this the estimator's own compiled (Cython) predict is faster


def _expit(raw: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw))


class _LinearHead:
    kind = "linear"

    def __init__(self, estimator: Any) -> None:
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.shape[0] != 1:
            raise CompileError("logistic regression is not binary")
        self.weights = coef[0]
        self.bias = float(np.asarray(estimator.intercept_).ravel()[0])

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return _expit(matrix @ self.weights + self.bias)


class _TreesHead:
    """All trees of a binary HistGradientBoostingClassifier walked at once, level by level."""

    kind = "trees"

    def __init__(self, estimator: Any) -> None:
        if getattr(estimator, "n_trees_per_iteration_", 0) != 1:
            raise CompileError("gradient boosting is not binary")
        if getattr(estimator, "_preprocessor", None) is not None:
            raise CompileError("gradient boosting encodes categories itself")
        trees = [predictors[0].nodes for predictors in estimator._predictors]
        if not trees:
            raise CompileError("gradient boosting has no trees")
        if any(nodes["is_categorical"].any() for nodes in trees):
            raise CompileError("gradient boosting has categorical splits")
        sizes = np.array([len(nodes) for nodes in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        nodes = np.concatenate(trees)
        shift = np.repeat(offsets, sizes)
        own = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        # Leaves point at themselves, so extra iterations of the walk keep them in place.
        self.left = np.where(leaf, own, nodes["left"].astype(np.int64) + shift)
        self.right = np.where(leaf, own, nodes["right"].astype(np.int64) + shift)
        self.feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.roots = offsets.astype(np.int64)
        self.depth = int(nodes["depth"][leaf].max())
        self.baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        self.estimator = estimator

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.shape[0] > TREES_MAX_ROWS:
            return self.estimator.predict_proba(matrix)[:, 1]
        rows = np.arange(matrix.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (matrix.shape[0], len(self.roots)))
        for _ in range(self.depth):
            values = matrix[rows, self.feature[node]]
            go_left = np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return _expit(self.value[node].sum(axis=1) + self.baseline)


class _EstimatorHead:
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


def _head(estimator: Any) -> Any:
    classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) != 2:
        raise CompileError(f"{type(estimator).__name__} is not a fitted binary classifier")
    name = type(estimator).__name__
    if name == "LogisticRegression":
        return _LinearHead(estimator)
    if name == "HistGradientBoostingClassifier":
        return _TreesHead(estimator)
    return _EstimatorHead(estimator)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Scorer:
    """Churn probabilities for records (one per customer) or a frame of feature columns.

    `kind` says which path is used: "linear", "trees" or "numpy" (compiled), or "pipeline"
    (the model's own pipeline; `reason` says why compiling was not possible). Rows with a
    missing category, or missing numbers the compiled path was not verified on, are scored by
    the pipeline, so imputation stays exactly the pipeline's.
    """

    def __init__(self, model: ChurnModel, layout: Layout | None = None, head: Any = None,
                 reason: str = "") -> None:
        self.model = model
        self.layout = layout
        self.head = head
        self.reason = reason
        self.nan_compiled = True  # whether missing numbers may take the compiled path
        self._numeric = [spec.name for spec in model.features if spec.kind == "numeric"]
        self._categorical = [spec.name for spec in model.features if spec.kind == "categorical"]

    @property
    def kind(self) -> str:
        return "pipeline" if self.head is None else self.head.kind

    def _needs_pipeline(self, record: Mapping[str, Any]) -> bool:
        if any(_missing(record[name]) for name in self._categorical):
            return True
        return not self.nan_compiled and any(_missing(record[name]) for name in self._numeric)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not records:
            return np.empty(0)
        if self.layout is None:
            return self.model.predict_proba(list(records))
        slow = [i for i, record in enumerate(records) if self._needs_pipeline(record)]
        if slow:
            out = np.empty(len(records))
            fast = sorted(set(range(len(records))) - set(slow))
            out[slow] = self.model.predict_proba([records[i] for i in slow])
            if fast:
                out[fast] = self.score_records([records[i] for i in fast])
            return out
        matrix = np.array([self.layout.row(record) for record in records], dtype=np.float64)
        return self.head.score_matrix(matrix)

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities for every row of `frame` (feature columns; others are ignored)."""
        missing = [name for name in self.model.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"missing feature columns: {', '.join(missing)}")
        if self.layout is None:
            return self.model.predict_proba(frame)
        columns = self.layout.columns(frame)
        if isinstance(self.head, _LinearHead):
            out = _expit(columns.dot(self.head.weights) + self.head.bias)
        else:
            out = np.empty(len(frame))
            for start in range(0, len(frame), CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, len(frame))
                out[start:stop] = self.head.score_matrix(columns.dense(start, stop))
        slow = columns.missing
        if not self.nan_compiled:
            slow = slow | columns.nan_rows()
        if slow.any():
            out[slow] = self.model.predict_proba(frame[slow])
        return out


def _verification_frame(model: ChurnModel, layout: Layout, rows: int, seed: int) -> pd.DataFrame:
    """Synthetic rows covering scaler ranges, small counts, zeros and every known category."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for spec in model.features:
        if spec.kind == "numeric":
            centre, spread = layout.numeric_range(spec.name)
            values = rng.normal(centre, spread * 2.0, rows)
            values[::5] = rng.integers(0, 40, len(values[::5]))
            values[::7] = 0.0
            data[spec.name] = values
        else:
            known = layout.known_categories(spec.name) or list(spec.categories) or ["a"]
            data[spec.name] = rng.choice(np.array([*known, "__unseen__"], dtype=object), rows)
    return pd.DataFrame(data)


def _verify(scorer: Scorer, model: ChurnModel, rows: int = 96) -> str:
    """An empty string when compiled scores match the pipeline's; otherwise what differs."""
    assert scorer.layout is not None
    frame = _verification_frame(model, scorer.layout, rows, seed=7)
    try:
        expected = model.predict_proba(frame)
    except ValueError:
        # The pipeline rejects unseen categories (handle_unknown="error"): verify on known ones.
        frame = frame[~frame.isin(["__unseen__"]).any(axis=1)].reset_index(drop=True)
        expected = model.predict_proba(frame)
    records = frame.to_dict("records")
    for name, got in (("rows", scorer.score_records(records)), ("frame", scorer.score_frame(frame))):
        worst = float(np.max(np.abs(got - expected))) if len(frame) else 0.0
        if not worst <= TOLERANCE:
            return f"compiled {name} path differs from the pipeline by {worst:.3g}"
    numeric = [spec.name for spec in model.features if spec.kind == "numeric"]
    if numeric:
        holes = frame.copy()
        for offset, name in enumerate(numeric):
            holes.loc[offset % len(holes) :: 3, name] = np.nan
        try:
            expected = model.predict_proba(holes)
        except ValueError:  # the pipeline itself cannot take missing values: keep its error
            scorer.nan_compiled = False
            return ""
        got = scorer.score_frame(holes)
        scorer.nan_compiled = bool(np.max(np.abs(got - expected)) <= TOLERANCE)
    return ""


def compile_scorer(model: ChurnModel) -> Scorer:
    """The fastest scorer that gives the pipeline's own answers for `model`."""
    estimator = model.estimator
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) != 2:
        return Scorer(model, reason="estimator is not a two-step Pipeline (preprocess, model)")
    try:
        layout = compile_layout(steps[0][1], model.features)
        head = _head(steps[1][1])
    except CompileError as exc:
        return Scorer(model, reason=str(exc))
    scorer = Scorer(model, layout, head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. unseen-category warnings from the pipeline
        problem = _verify(scorer, model)
    if problem:
        return Scorer(model, reason=problem)
    return scorer
