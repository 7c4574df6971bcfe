"""Choose, tune, refit and calibrate a churn model on the training set alone.

1. Every candidate (each algorithm; for the gradient-boosted model, a seeded list of settings
   searched under a time budget) is scored on the same validation folds (folds.py). The
   gradient-boosted model early-stops on each fold's validation block, never on random rows.
2. The best candidate by the mean fold score of the primary metric is refitted on all training
   rows (for boosting, with the median early-stopped iteration count of its folds).
3. Its out-of-fold scores fit a Platt calibration and the decision threshold (a business rule).
The test set is not seen here: it measures the result once, for the gate and the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.folds import Folds
from churnctl.domain.metrics import classification_metrics
from churnctl.domain.modeling import HGB_DEFAULTS, MAX_ITER

HGB = "hist_gradient_boosting"
PATIENCE = 20  # boosting rounds without validation improvement before a fold stops
SEARCH_SPACE: dict[str, tuple[Any, ...]] = {
    "learning_rate": (0.03, 0.05, 0.08, 0.12),
    "max_leaf_nodes": (7, 15, 31, 63),
    "l2_regularization": (0.0, 0.1, 1.0, 5.0, 10.0),
    "min_samples_leaf": (10, 20, 50, 100),
}
# Regularisation of the linear baseline: cheap to try, and it is what wins on additive tables.
LR_SEARCH: tuple[dict[str, Any], ...] = ({"C": 1.0}, {"C": 0.1}, {"C": 0.3}, {"C": 3.0})
LOWER_IS_BETTER = frozenset({"brier"})
MakeEstimator = Callable[[str, dict[str, Any]], Any]  # (algorithm, params) -> Pipeline


@dataclass
class Trial:
    algorithm: str
    params: dict[str, Any]
    mean: dict[str, float]
    std: dict[str, float]
    iterations: list[int]  # per fold, boosting only
    seconds: float
    oof: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "params": self.params, "mean": self.mean,
                "std": self.std, "iterations": self.iterations,
                "seconds": round(self.seconds, 3)}


def search_settings(seed: int, count: int) -> list[dict[str, Any]]:
    """HGB_DEFAULTS first, then distinct draws from SEARCH_SPACE in an order fixed by `seed`."""
    rng = np.random.default_rng(seed)
    out = [dict(HGB_DEFAULTS)]
    seen = {tuple(sorted(HGB_DEFAULTS.items()))}
    space = int(np.prod([len(v) for v in SEARCH_SPACE.values()]))
    while len(out) < min(count, space):
        draw = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
        draw = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in draw.items()}
        key = tuple(sorted(draw.items()))
        if key not in seen:
            seen.add(key)
            out.append(draw)
    return out


class PreparedFolds:
    """Each fold's rows through an algorithm's preprocessing, computed once: the search varies
    only the model's settings, and re-encoding every fold for every trial was a third of it."""

    def __init__(self, x: pd.DataFrame, folds: Folds) -> None:
        self.x, self.folds = x, folds
        self._cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def get(self, estimator: Any, algorithm: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        key = (algorithm, index)
        if key not in self._cache:
            fit, val = self.folds.splits[index]
            prep = estimator.steps[0][1]
            self._cache[key] = (prep.fit_transform(self.x.iloc[fit]),
                                prep.transform(self.x.iloc[val]))
        return self._cache[key]


def _fit_fold(estimator: Any, algorithm: str, prepared: PreparedFolds, y: np.ndarray,
              index: int) -> tuple[np.ndarray, int | None]:
    fit, val = prepared.folds.splits[index]
    x_fit, x_val = prepared.get(estimator, algorithm, index)
    model = estimator.steps[1][1]
    if algorithm == HGB:
        model.set_params(early_stopping=True, n_iter_no_change=PATIENCE, max_iter=MAX_ITER)
        model.fit(x_fit, y[fit], X_val=x_val, y_val=y[val])
        return model.predict_proba(x_val)[:, 1], int(model.n_iter_)
    model.fit(x_fit, y[fit])
    return model.predict_proba(x_val)[:, 1], None


def run_trial(make: MakeEstimator, algorithm: str, params: dict[str, Any],
              prepared: PreparedFolds, y: np.ndarray) -> Trial:
    """Fit and score one candidate on every fold."""
    began = time.perf_counter()
    oof = np.full(len(y), np.nan)
    per_fold: dict[str, list[float]] = {}
    iterations = []
    for index, (_, val) in enumerate(prepared.folds.splits):
        proba, rounds = _fit_fold(make(algorithm, params), algorithm, prepared, y, index)
        oof[val] = proba
        if rounds is not None:
            iterations.append(rounds)
        for key, value in classification_metrics(y[val], proba).items():
            per_fold.setdefault(key, []).append(value)
    return Trial(algorithm, params,
                 {k: round(float(np.mean(v)), 6) for k, v in per_fold.items()},
                 {k: round(float(np.std(v)), 6) for k, v in per_fold.items()},
                 iterations, time.perf_counter() - began, oof)


def _better(metric: str) -> Callable[[Trial], float]:
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    return lambda trial: sign * trial.mean[metric]


@dataclass
class Selection:
    best: Trial
    trials: list[Trial]
    folds: Folds
    budget_seconds: float | None
    stopped_by_budget: bool

    def by_algorithm(self) -> dict[str, Trial]:
        """The best trial of each algorithm."""
        out: dict[str, Trial] = {}
        for trial in self.trials:
            if trial.algorithm not in out or trial is self.best:
                out[trial.algorithm] = trial
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"folds": self.folds.to_dict(), "chosen": self.best.algorithm,
                "params": self.best.params, "trials": [t.to_dict() for t in self.trials],
                "budget_seconds": self.budget_seconds,
                "stopped_by_budget": self.stopped_by_budget}


def candidates(algorithms: list[str], seed: int, max_trials: int
               ) -> list[tuple[int, str, dict[str, Any]]]:
    """(round, algorithm, settings): every algorithm's first setting (round 0), then one more
    of each in turn. `select` tries round 0 first, then the rest cheapest algorithm first."""
    lists = {a: search_settings(seed, max_trials) if a == HGB else list(LR_SEARCH[:max_trials])
             for a in algorithms}
    rounds = max(len(v) for v in lists.values())
    return [(r, a, lists[a][r]) for r in range(rounds) for a in algorithms if r < len(lists[a])]


def select(make: MakeEstimator, algorithms: list[str], x: pd.DataFrame, y: np.ndarray,
           folds: Folds, metric: str, budget_seconds: float | None, max_trials: int, seed: int,
           log: Callable[[str], None] = lambda _: None) -> Selection:
    """Every algorithm's first setting, then the search: the other settings round by round
    (the order of `candidates`). With `budget_seconds` (seconds after the first round) the
    cheapest algorithm goes first (by its first trial's time), so a slow search does not crowd
    out a cheap one, and a setting is skipped when its algorithm's mean trial time would
    overrun the budget; without one, nothing here reads the clock's verdict."""
    if len(folds.splits) < 2:
        raise ValueError(f"only {len(folds.splits)} usable validation fold(s) ({folds.kind}); "
                         "use more rows or fewer cv_folds")
    prepared = PreparedFolds(x, folds)
    trials: list[Trial] = []
    stopped = False
    queue = candidates(algorithms, seed, max_trials)
    first = [c for c in queue if c[0] == 0]
    for _, algorithm, params in first:
        log(f"{algorithm} setting 1 on {len(folds.splits)} {folds.kind} folds")
        trials.append(run_trial(make, algorithm, params, prepared, y))
    cost = {t.algorithm: t.seconds for t in trials}
    began = time.perf_counter()
    rest = [c for c in queue if c[0]]
    if budget_seconds is not None:  # under a budget the cheap searches go first
        rest.sort(key=lambda c: (cost[c[1]], c[0]))
    for index, algorithm, params in rest:
        if budget_seconds is not None:
            spent = [t.seconds for t in trials if t.algorithm == algorithm]
            if time.perf_counter() - began + float(np.mean(spent)) > budget_seconds:
                stopped = True
                continue
        log(f"{algorithm} setting {index + 1} on {len(folds.splits)} {folds.kind} folds")
        trials.append(run_trial(make, algorithm, params, prepared, y))
    scored = _better(metric)
    best = max(trials, key=scored)  # the first of equals: the default settings win ties
    return Selection(best, trials, folds, budget_seconds, stopped)


def refit(make: MakeEstimator, trial: Trial, x: pd.DataFrame, y: np.ndarray) -> Any:
    """The chosen candidate fitted on all training rows."""
    params = dict(trial.params)
    if trial.algorithm == HGB:
        params["max_iter"] = max(int(np.median(trial.iterations)), 1)
    return make(trial.algorithm, params).fit(x, y)


def platt(y: np.ndarray, oof: np.ndarray, min_rows: int = 200) -> tuple[float, float] | None:
    """(slope, intercept) mapping log-odds of out-of-fold scores to calibrated log-odds, or
    None with too few scored rows (or one class) to fit it."""
    from sklearn.linear_model import LogisticRegression

    keep = ~np.isnan(oof)
    if keep.sum() < min_rows or len(np.unique(y[keep])) < 2:
        return None
    p = np.clip(oof[keep], 1e-15, 1 - 1e-15)
    logit = np.log(p / (1 - p)).reshape(-1, 1)
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y[keep])
    return round(float(fitted.coef_[0, 0]), 8), round(float(fitted.intercept_[0]), 8)
