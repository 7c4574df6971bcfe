"""The gate's noise: weighted metrics equal scikit-learn's, and the paired interval decides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churnctl.domain.bootstrap import _resample_counts, paired_difference, weighted_metric
from churnctl.promotion import decide

SKLEARN = {"pr_auc": average_precision_score, "roc_auc": roc_auc_score,
           "brier": brier_score_loss}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(20, 400), digits=st.integers(1, 4),
       metric=st.sampled_from(sorted(SKLEARN)))
def test_weighted_metrics_equal_sklearn_with_sample_weight(seed, rows, digits, metric) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(int)
    y[:2] = [0, 1]
    score = np.round(rng.random(rows) * 0.6 + 0.4 * y, digits)  # rounding makes ties
    counts = _resample_counts(rng, rows, 4)
    counts[:, :2] += 1  # both classes in every resample
    got = weighted_metric(metric, y, score, counts)
    expected = [SKLEARN[metric](y, score, sample_weight=w) for w in counts]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def _pair(rows: int, gap: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.25).astype(int)
    base = rng.normal(0, 1, rows)
    weak = base + 0.8 * y + rng.normal(0, 1, rows)
    strong = weak + gap * y + rng.normal(0, 0.7, rows)  # its own errors, not just a shift
    return y, 1 / (1 + np.exp(-strong)), 1 / (1 + np.exp(-weak))


def test_a_clearly_better_model_clears_the_gate_and_a_copy_does_not() -> None:
    y, strong, weak = _pair(4000, 1.5)
    better = paired_difference("pr_auc", y, strong, weak, resamples=400)
    assert better.lower > 0 and better.lower <= better.difference <= better.upper
    same = paired_difference("pr_auc", y, weak, weak, resamples=400)
    assert same.lower == same.upper == same.difference == 0.0
    brier = paired_difference("brier", y, strong, weak, resamples=400)
    assert brier.difference == pytest.approx(
        brier_score_loss(y, weak) - brier_score_loss(y, strong), abs=1e-6)


def test_a_difference_inside_the_noise_keeps_production() -> None:
    """Slightly better on these 600 rows, by less than their sampling error: a point
    comparison with margin 0 would promote it; the interval does not."""
    for seed in range(50):  # a draw where the candidate looks better, within the noise
        y, candidate, production = _pair(600, 0.2, seed)
        interval = paired_difference("pr_auc", y, candidate, production, resamples=500)
        if interval.difference > 0 and interval.lower < 0:
            break
    assert interval.difference > 0 and interval.lower < 0
    metrics = {"pr_auc": average_precision_score(y, candidate)}
    incumbent = {"pr_auc": average_precision_score(y, production)}
    assert decide("pr_auc", 0.0, metrics, incumbent, 1).promote  # the old rule
    gated = decide("pr_auc", 0.0, metrics, incumbent, 1, interval=interval.to_dict())
    assert not gated.promote and gated.interval == interval.to_dict()
    assert "interval" in gated.reason and "kept production" in gated.reason


def test_the_interval_is_reproducible_by_seed_and_narrows_with_rows() -> None:
    y, a, b = _pair(3000, 0.3)
    assert paired_difference("roc_auc", y, a, b, seed=5) == paired_difference(
        "roc_auc", y, a, b, seed=5)
    small = paired_difference("roc_auc", *_pair(500, 0.3), resamples=400)
    large = paired_difference("roc_auc", *_pair(8000, 0.3), resamples=400)
    assert large.upper - large.lower < small.upper - small.lower
