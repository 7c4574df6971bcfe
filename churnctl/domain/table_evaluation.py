"""Model choice and evaluation numbers: cross-validation, threshold, curves, gain, importance.

Used by the sklearn train backend for customer tables and event data alike; the report shows
these numbers and the run record keeps them, so they are plain lists and floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.metrics import classification_metrics
from churnctl.domain.table_importance import permutation_importance

__all__ = ["permutation_importance"]  # kept importable from here (train_sklearn)

CURVE_POINTS = 200  # enough for a smooth plot, small enough for a JSON run record


def _r(values: Any, digits: int = 5) -> list[float]:
    return [round(float(v), digits) for v in values]


def cross_validate(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], y: np.ndarray,
                   folds: int, seed: int, order: np.ndarray | None = None) -> dict[str, Any]:
    """Per-fold metrics and out-of-fold probabilities.

    `fit_predict(train_idx, val_idx)` fits a fresh model and returns probabilities for the
    validation rows. With `order` (times), folds are forward-chaining: each fold validates on
    later rows than it trains on, as the time split does; rows of the first block get no score.
    """
    from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

    if order is None:
        splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        ranked = np.argsort(order, kind="stable")
        splits = ((ranked[a], ranked[b]) for a, b in TimeSeriesSplit(folds).split(ranked))
    oof = np.full(len(y), np.nan)
    per_fold: dict[str, list[float]] = {}
    for train_idx, val_idx in splits:
        if len(np.unique(y[train_idx])) < 2 or len(np.unique(y[val_idx])) < 2:
            continue  # a time fold without both classes says nothing
        oof[val_idx] = fit_predict(train_idx, val_idx)
        for key, value in classification_metrics(y[val_idx], oof[val_idx]).items():
            per_fold.setdefault(key, []).append(value)
    return {
        "folds": len(per_fold.get("pr_auc", [])),
        "mean": {k: round(float(np.mean(v)), 6) for k, v in per_fold.items()},
        "std": {k: round(float(np.std(v)), 6) for k, v in per_fold.items()},
        "oof": oof,
    }


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut that maximises F1: a balance of whom to call and whom to miss."""
    from sklearn.metrics import precision_recall_curve

    keep = ~np.isnan(proba)
    precision, recall, thresholds = precision_recall_curve(y[keep], proba[keep])
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(precision), where=(precision + recall) > 0)[:-1]
    return round(float(thresholds[int(np.argmax(f1))]), 4) if len(thresholds) else 0.5


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    """At most CURVE_POINTS points, always keeping both ends."""
    size = len(arrays[0])
    if size <= CURVE_POINTS:
        return list(arrays)
    index = np.unique(np.linspace(0, size - 1, CURVE_POINTS).round().astype(int))
    return [a[index] for a in arrays]


def curves(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    fpr, tpr, _ = roc_curve(y, proba)
    fpr, tpr = _thin(fpr, tpr)
    precision, recall, _ = precision_recall_curve(y, proba)
    recall, precision = _thin(recall[::-1], precision[::-1])
    return {
        "roc": {"fpr": _r(fpr), "tpr": _r(tpr), "auc": round(float(roc_auc_score(y, proba)), 6)},
        "pr": {"recall": _r(recall), "precision": _r(precision),
               "average_precision": round(float(average_precision_score(y, proba)), 6),
               "base_rate": round(float(np.mean(y)), 6)},
    }


def calibration(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Mean predicted vs observed churn rate in bins of equal size (quantiles of the scores)."""
    edges = np.unique(np.quantile(proba, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges[1:-1], proba, side="right"), 0, max(len(edges) - 2, 0))
    frame = pd.DataFrame({"bin": which, "y": y, "p": proba}).groupby("bin")
    return {"predicted": _r(frame["p"].mean()), "observed": _r(frame["y"].mean()),
            "customers": [int(n) for n in frame.size()]}


def confusion(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = proba >= threshold
    tp, fp = int((flagged & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    fn, tn = int((~flagged & (y == 1)).sum()), int((~flagged & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "tn": tn, "fp": fp, "fn": fn, "tp": tp,
            "precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6),
            "accuracy": round((tp + tn) / len(y), 6),
            "flagged_share": round(float(flagged.mean()), 6)}


def gain_by_decile(y: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """Customers ranked by churn probability, in ten equal groups: who a retention team calls."""
    order = np.argsort(-proba, kind="stable")
    total, base = max(int(y.sum()), 1), float(np.mean(y)) or 1.0
    rows, seen, caught = [], 0, 0
    for decile, index in enumerate(np.array_split(order, 10), start=1):
        churners = int(y[index].sum())
        seen, caught = seen + len(index), caught + churners
        rate = churners / len(index) if len(index) else 0.0
        rows.append({
            "decile": decile, "customers": len(index), "churners": churners,
            "churn_rate": round(rate, 6), "lift": round(rate / base, 4),
            "cumulative_share": round(seen / len(y), 6),
            "cumulative_gain": round(caught / total, 6),
            "cumulative_lift": round((caught / seen) / base, 4) if seen else 0.0,
            "min_probability": round(float(proba[index].min()), 6) if len(index) else 0.0,
        })
    return rows


def evaluate(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    return {**curves(y, proba), "calibration": calibration(y, proba),
            "confusion": confusion(y, proba, threshold), "gain": gain_by_decile(y, proba)}


def data_profile(train: pd.DataFrame, test: pd.DataFrame, target: str, numeric: list[str],
                 categorical: list[str]) -> dict[str, Any]:
    """Rows, class balance and blanks of the training set the model saw."""
    both = pd.concat([train, test], ignore_index=True)
    return {
        "train_rows": len(train), "test_rows": len(test),
        "train_positive_rate": round(float(train[target].mean()), 6),
        "test_positive_rate": round(float(test[target].mean()), 6),
        "columns": [{"name": name, "kind": kind, "missing": int(both[name].isna().sum()),
                     "distinct": int(both[name].nunique())}
                    for kind, names in (("numeric", numeric), ("categorical", categorical))
                    for name in names],
    }
