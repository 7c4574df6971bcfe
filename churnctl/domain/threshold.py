"""The churn decision threshold: whom to contact, from a business rule rather than 0.5.

The rules work on calibrated probabilities (training.platt), so "probability 0.2" means about
one customer in five with that score churns:
- `cost`: contact when p >= 1 / cost_ratio, where cost_ratio is what a missed churner costs in
  contacts (a retention offer that saves a customer worth 5 contacts: ratio 5, threshold 0.2);
- `contact_share`: the team can contact a share of customers; the cut that flags that share of
  the out-of-fold scores;
- `f1`: the cut with the best F1 on out-of-fold scores (balanced, but no one's business rule);
- `fixed`: a number the team chose.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Rule = Literal["cost", "contact_share", "f1", "fixed"]


def decision_threshold(rule: Rule, y: np.ndarray, oof: np.ndarray | None, *,
                       cost_ratio: float = 5.0, contact_share: float = 0.1,
                       fixed: float | None = None) -> tuple[float, str]:
    """(threshold, how it was chosen). `oof` are calibrated out-of-fold probabilities (NaN
    where a row was never validated); rules that need them fall back to `cost` without."""
    scored = None if oof is None else oof[~np.isnan(oof)]
    if rule == "fixed":
        if fixed is None:
            raise ValueError("threshold_rule fixed needs train.threshold")
        return fixed, "set in the train options"
    if rule in ("contact_share", "f1") and (scored is None or not len(scored)):
        rule = "cost"
    if rule == "contact_share":
        assert scored is not None
        value = float(np.quantile(scored, 1 - contact_share))
        return round(value, 6), (f"contact capacity: the {contact_share:.0%} highest-risk "
                                 "customers of the out-of-fold scores")
    if rule == "f1":
        from churnctl.domain.table_evaluation import best_f1_threshold

        assert oof is not None
        return best_f1_threshold(y, oof), "best F1 on out-of-fold scores of the training set"
    return round(1.0 / cost_ratio, 6), (f"cost rule: a missed churner costs {cost_ratio:g} "
                                        f"contacts, so contact from probability 1/{cost_ratio:g}")
