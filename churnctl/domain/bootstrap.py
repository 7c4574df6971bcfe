"""Paired bootstrap of a metric difference between two models scored on the same rows.

The promotion gate asks "is the candidate better than production by more than noise?". Both
models are scored on the same test rows; each resample draws rows with replacement and
recomputes both metrics on that draw, so the interval of the difference reflects only the
sampling of rows, with the pairing kept (a hard row is hard for both models).

A resample is a vector of row counts (how often each row was drawn), so every metric is a
weighted metric over the original rows: one sort per model, then cumulative sums over all
resamples at once. `weighted_metric` equals scikit-learn's metrics with `sample_weight`
(tests/test_bootstrap.py checks it), at ~100x the speed of calling them once per resample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METRICS = ("pr_auc", "roc_auc", "brier")
LOWER_IS_BETTER = frozenset({"brier"})
CHUNK = 128  # resamples per block: bounds memory at CHUNK x rows floats


@dataclass(frozen=True)
class Interval:
    metric: str
    difference: float  # candidate minus production on all rows, as "higher is better"
    lower: float
    upper: float
    level: float
    resamples: int
    rows: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ordered(y: np.ndarray, score: np.ndarray, weights: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative positive and negative weight at the end of each group of tied scores, rows
    in decreasing score order (as precision_recall_curve and roc_curve threshold them)."""
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    w = weights[..., order]
    positive = np.cumsum(w * y[order], axis=-1)[..., ends]
    negative = np.cumsum(w * (1 - y[order]), axis=-1)[..., ends]
    return positive, negative, ends


def weighted_metric(metric: str, y: np.ndarray, score: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """`metric` of `score` against 0/1 labels `y` for each row of `weights` (shape [B, rows]
    or [rows]); returns shape [B] (or a scalar array). Brier is returned as is (lower = better).
    """
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if metric == "brier":
        return (weights * (score - y) ** 2).sum(-1) / weights.sum(-1)
    tp, fp, _ = _ordered(y, np.asarray(score, dtype=np.float64), weights)
    total_p, total_n = tp[..., -1:], fp[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / total_p
        if metric == "pr_auc":
            precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
            steps = np.diff(recall, axis=-1, prepend=0.0)
            return (steps * precision).sum(-1)
        if metric == "roc_auc":
            fpr = fp / total_n
            tpr = np.concatenate([np.zeros_like(recall[..., :1]), recall], axis=-1)
            fpr = np.concatenate([np.zeros_like(fpr[..., :1]), fpr], axis=-1)
            return np.trapezoid(tpr, fpr, axis=-1)
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def _resample_counts(rng: np.random.Generator, rows: int, draws: int) -> np.ndarray:
    picks = rng.integers(0, rows, (draws, rows)) + (np.arange(draws)[:, None] * rows)
    return np.bincount(picks.ravel(), minlength=draws * rows).reshape(draws, rows)


def paired_difference(metric: str, y: np.ndarray, candidate: np.ndarray,
                      production: np.ndarray, resamples: int = 1000, level: float = 0.9,
                      seed: int = 0) -> Interval:
    """The candidate-minus-production difference of `metric` with a percentile interval.

    Differences are signed so that positive means the candidate is better, for every metric.
    Resamples in which a class is absent are redrawn implicitly by being skipped (they have
    no ROC or PR curve); with churn rates of a few percent on thousands of rows that is rare.
    """
    if not 0 < level < 1:
        raise ValueError("level must be within (0, 1)")
    y = np.asarray(y, dtype=np.float64)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ones = np.ones(len(y))
    point = sign * float(weighted_metric(metric, y, candidate, ones)
                         - weighted_metric(metric, y, production, ones))
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, resamples, CHUNK):
        counts = _resample_counts(rng, len(y), min(CHUNK, resamples - start))
        both = ((counts * y).sum(1) > 0) & ((counts * (1 - y)).sum(1) > 0)
        counts = counts[both]
        differences.append(sign * (weighted_metric(metric, y, candidate, counts)
                                   - weighted_metric(metric, y, production, counts)))
    spread = np.concatenate(differences)
    tail = (1 - level) / 2
    lower, upper = np.quantile(spread, [tail, 1 - tail])
    return Interval(metric, round(point, 6), round(float(lower), 6), round(float(upper), 6),
                    level, len(spread), len(y), seed)
