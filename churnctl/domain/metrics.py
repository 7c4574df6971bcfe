"""Classification metrics churnctl reports; PR-AUC is the primary one (churn is imbalanced)."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    if len(np.unique(y_true)) < 2:
        raise ValueError(
            "the test set has only one class; widen the data window or the test fraction"
        )
    return {
        "pr_auc": round(float(average_precision_score(y_true, proba)), 6),
        "roc_auc": round(float(roc_auc_score(y_true, proba)), 6),
        "brier": round(float(brier_score_loss(y_true, proba)), 6),
        "positive_rate": round(float(np.mean(y_true)), 6),
    }


