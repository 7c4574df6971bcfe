"""Model choice on the training set: folds without look-ahead, a seeded search under a budget,
refit, calibration and the business threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churnctl.domain.folds import embargoed_time_folds, event_folds, table_folds
from churnctl.domain.modeling import build_estimator
from churnctl.domain.threshold import decision_threshold
from churnctl.domain.training import HGB, candidates, platt, refit, search_settings, select


@settings(max_examples=50, deadline=None)
@given(dates=st.integers(5, 60), every=st.integers(1, 4), embargo=st.integers(1, 40),
       folds=st.integers(2, 5))
def test_time_folds_fit_only_on_snapshots_an_embargo_before_validation(dates, every, embargo,
                                                                       folds) -> None:
    days = np.datetime64("2025-01-01") + np.arange(dates) * every
    times = np.repeat(days, 4).astype("datetime64[ns]")
    y = np.tile([0, 1, 0, 0], dates)
    for fit, val in embargoed_time_folds(times, y, folds, embargo):
        gap = (times[val].min() - times[fit].max()).astype("timedelta64[D]").astype(int)
        assert gap >= embargo
        assert not set(fit) & set(val)


def test_short_training_periods_fall_back_to_user_groups() -> None:
    times = np.repeat(np.datetime64("2025-01-01") + np.arange(8) * 3, 50).astype("datetime64[ns]")
    users = np.tile(np.arange(50), 8)
    y = (np.random.default_rng(0).random(len(users)) < 0.3).astype(int)
    folds = event_folds(times, users, y, 3, 30, seed=1)
    assert folds.kind == "user-grouped" and "too short" in folds.note
    for fit, val in folds.splits:
        assert not set(users[fit]) & set(users[val])  # no user on both sides
    longer = event_folds(np.repeat(np.datetime64("2025-01-01") + np.arange(60) * 3, 50)
                         .astype("datetime64[ns]"), np.tile(np.arange(50), 60),
                         np.tile(y[:50], 60), 3, 30, seed=1)
    assert longer.kind == "time, embargoed" and len(longer.splits) >= 2


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(60, 400), rate=st.floats(0.1, 0.5), seed=st.integers(0, 99))
def test_table_folds_are_stratified_and_reproducible(rows, rate, seed) -> None:
    y = (np.random.default_rng(seed).random(rows) < rate).astype(int)
    y[:10] = 1
    y[10:20] = 0
    first, again = table_folds(y, 5, seed), table_folds(y, 5, seed)
    assert [v.tolist() for _, v in first.splits] == [v.tolist() for _, v in again.splits]
    for _, val in first.splits:
        assert abs(y[val].mean() - y.mean()) <= 1 / len(val) + 1e-9 + 1 / 5
        assert abs(y[val].sum() - y.sum() / 5) <= 1


def test_search_is_seeded_and_starts_from_the_defaults() -> None:
    from churnctl.domain.modeling import HGB_DEFAULTS

    first = search_settings(7, 6)
    assert first == search_settings(7, 6) and first[0] == HGB_DEFAULTS
    assert len({tuple(sorted(p.items())) for p in first}) == 6
    assert search_settings(8, 6) != first


def _table(rows: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows),
                      "c": rng.choice(["x", "y", "z"], rows).astype(object)})
    logit = 1.2 * x["a"] - np.abs(x["b"]) * 1.5 + (x["c"] == "z") * 0.8
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return x, y


def _make(algorithm: str, params: dict) -> object:
    return build_estimator(algorithm, ["a", "b"], ["c"], 0, params)


def test_a_zero_budget_runs_each_algorithm_once_and_more_budget_searches() -> None:
    x, y = _table()
    folds = table_folds(y, 3, 0)
    quick = select(_make, ["logistic_regression", HGB], x, y, folds, "roc_auc", 0.0, 6, 0)
    assert [t.algorithm for t in quick.trials] == ["logistic_regression", HGB]
    assert quick.stopped_by_budget
    # With time, the searches take turns: the linear model's C, then boosting settings.
    order = [(a, p) for _, a, p in candidates(["logistic_regression", HGB], 0, 3)]
    assert [a for a, _ in order] == ["logistic_regression", HGB] * 3
    assert order[2][1] == {"C": 0.1}
    full = select(_make, [HGB], x, y, folds, "roc_auc", None, 3, 0)
    assert len(full.trials) == 3 and not full.stopped_by_budget
    assert full.best.mean["roc_auc"] == max(t.mean["roc_auc"] for t in full.trials)
    # Early stopping on each fold's validation block sets the refit's rounds.
    assert all(1 <= n <= 500 for n in full.best.iterations)
    model = refit(_make, full.best, x, y)
    assert model.steps[1][1].n_iter_ == int(np.median(full.best.iterations))
    assert not np.isnan(full.best.oof).any()  # stratified folds score every row once


def test_the_default_search_chooses_the_same_model_on_a_slow_machine(monkeypatch) -> None:
    # A clock-bound default made a loaded CI machine train another model than a quiet one
    # (a rerun after a kill, v1-v2 parity and Spark-pandas parity all disagreed).
    import time as clock

    from churnctl.backends.train_sklearn import SklearnTrainerOptions

    defaults = SklearnTrainerOptions()
    x, y = _table()
    folds = table_folds(y, 3, 0)

    def chosen() -> list[tuple[str, dict]]:
        selection = select(_make, ["logistic_regression", HGB], x, y, folds, "roc_auc",
                           defaults.budget_seconds, defaults.search_trials, defaults.seed)
        return [(t.algorithm, t.params) for t in selection.trials]

    quick = chosen()
    ticks = iter(range(0, 10**9, 60))  # every look at the clock: another minute gone
    monkeypatch.setattr(clock, "perf_counter", lambda: float(next(ticks)))
    assert chosen() == quick
    assert len(quick) == 2 * defaults.search_trials


def test_platt_calibration_fixes_overconfident_scores() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(20_000)
    y = (rng.random(20_000) < truth).astype(int)
    logit = np.log(truth / (1 - truth))
    overconfident = 1 / (1 + np.exp(-3 * logit))
    slope, intercept = platt(y, overconfident)
    assert abs(slope - 1 / 3) < 0.03 and abs(intercept) < 0.05
    assert platt(y[:50], overconfident[:50]) is None  # too few rows to fit


def test_thresholds_follow_the_business_rule() -> None:
    y = np.array([0, 0, 0, 1] * 250)
    oof = np.linspace(0.01, 0.99, 1000)
    assert decision_threshold("cost", y, oof, cost_ratio=4)[0] == 0.25
    share, how = decision_threshold("contact_share", y, oof, contact_share=0.1)
    assert abs((oof >= share).mean() - 0.1) < 0.01 and "10%" in how
    assert decision_threshold("fixed", y, oof, fixed=0.37)[0] == 0.37
    assert decision_threshold("contact_share", y, None)[1].startswith("cost rule")
