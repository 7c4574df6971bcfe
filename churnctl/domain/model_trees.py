"""Bounds checks for the trees of a loaded HistGradientBoosting model.

skops can only check that an object is of a trusted type, not that its content is sane. A
TreePredictor's `nodes` array holds raw child, feature and bitset indices that sklearn's
compiled predict follows without bounds checks, so a crafted file could read out of bounds
or loop forever on the first prediction. These checks cover every index it follows.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_trees(estimator: Any) -> str | None:
    """What is wrong with the trees of `estimator` (a Pipeline or one step), or None."""
    steps = [step for _, step in getattr(estimator, "steps", [])] or [estimator]
    for step in steps:
        if hasattr(step, "_predictors"):
            problem = _check_boosting(step)
            if problem:
                return problem
    return None


def _check_boosting(model: Any) -> str | None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features = getattr(model, "n_features_in_", None)
    mapper = getattr(model, "_bin_mapper", None)
    is_categorical = np.asarray(getattr(mapper, "is_categorical_", None))
    if not isinstance(n_features, int) or is_categorical.shape != (n_features,):
        return "gradient boosting feature counts do not match"
    per_iteration = model._predictors
    if not isinstance(per_iteration, list) or not per_iteration:
        return "gradient boosting has no trees"
    for number, trees in enumerate(per_iteration):
        for tree in trees if isinstance(trees, list) else [trees]:
            if type(tree) is not TreePredictor:
                return f"tree {number} is a {type(tree).__name__}, not a TreePredictor"
            problem = _check_nodes(tree, n_features, is_categorical.astype(bool),
                                   PREDICTOR_RECORD_DTYPE)
            if problem:
                return f"tree {number}: {problem}"
    return None


def _check_nodes(tree: Any, n_features: int, is_categorical: np.ndarray,
                 record: np.dtype) -> str | None:
    nodes, bitsets = tree.nodes, tree.raw_left_cat_bitsets
    if not isinstance(nodes, np.ndarray) or nodes.dtype != record or nodes.ndim != 1:
        return "nodes are not sklearn's node records"
    if not len(nodes):
        return "no nodes"
    if not (isinstance(bitsets, np.ndarray) and bitsets.ndim == 2 and bitsets.shape[1] == 8
            and bitsets.dtype == np.uint32):
        return "category bitsets have the wrong shape"
    split = nodes["is_leaf"] == 0
    index = np.arange(len(nodes))[split]
    left, right = nodes["left"][split].astype(np.int64), nodes["right"][split].astype(np.int64)
    # Children after their parent (how sklearn lays trees out) rules out cycles as well.
    if ((left <= index) | (right <= index) | (left >= len(nodes)) | (right >= len(nodes))).any():
        return "a split points to a child outside the tree"
    feature = nodes["feature_idx"][split]
    if ((feature < 0) | (feature >= n_features)).any():
        return "a split uses a feature the model does not have"
    categorical = nodes["is_categorical"][split] != 0
    if categorical.any():
        cat_features, cat_bitsets = feature[categorical], nodes["bitset_idx"][split][categorical]
        # The known-categories look-up is indexed by categorical feature: only those qualify.
        if not is_categorical[cat_features].all() or (cat_bitsets >= len(bitsets)).any():
            return "a categorical split points outside its category tables"
    return None
