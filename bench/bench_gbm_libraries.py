"""Gradient-boosting libraries on churnctl's own train/test rows: quality and speed.

On the three generated exports of bench/bench_quality.py, the rows churnctl puts in its train
and test sets (from `churnctl run --data X --target T --only ingest --only validate --only
features`, read through the run record) and the same by-hand preprocessing (ids, row numbers
and surnames dropped, TotalCharges parsed, categoricals as pandas categories), this fits:

- sklearn HistGradientBoosting with defaults (all training rows, 100 iterations);
- sklearn HistGradientBoosting, LightGBM, XGBoost and CatBoost, each with its default settings
  except up to 1000 rounds and early stopping after 50 rounds without improvement of the log
  loss on a validation split (a stratified 20 % of the training rows, the same for all);

with 1 and with 2 threads, and records test ROC AUC, rounds, fit seconds (best of 3), batch
predict_proba rows/s on the test rows and single-row predict_proba milliseconds.

    .venv/bin/python -m pip install lightgbm xgboost catboost   # bench only, not a dependency
    .venv/bin/python bench/bench_gbm_libraries.py     # -> bench/results/gbm_libraries.json
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from _common import write_results
from bench_quality import (
    FIXTURES,
    BenchError,
    Fixture,
    Prepared,
    churnctl_split,
    code_state,
    run_churnctl,
    tree_frame,
)

ROUNDS = 1000
PATIENCE = 50
REPEAT = 3
THREADS = (1, 2)


def _hgb_default(threads: int, categorical: list[str]) -> Callable:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fit(train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame, y_val: np.ndarray):
        model = HistGradientBoostingClassifier(random_state=0)
        model.fit(pd.concat([train, val]), np.concatenate([y, y_val]))
        return model, model.n_iter_
    return fit


def _hgb_early(threads: int, categorical: list[str]) -> Callable:
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fit(train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame, y_val: np.ndarray):
        model = HistGradientBoostingClassifier(max_iter=ROUNDS, early_stopping=True,
                                               n_iter_no_change=PATIENCE, random_state=0)
        model.fit(train, y, X_val=val, y_val=y_val)
        return model, model.n_iter_
    return fit


def _lightgbm(threads: int, categorical: list[str]) -> Callable:
    import lightgbm

    def fit(train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame, y_val: np.ndarray):
        model = lightgbm.LGBMClassifier(n_estimators=ROUNDS, n_jobs=threads, random_state=0,
                                        verbose=-1)
        model.fit(train, y, eval_X=val, eval_y=y_val, eval_metric="binary_logloss",
                  callbacks=[lightgbm.early_stopping(PATIENCE, verbose=False)])
        return model, model.best_iteration_
    return fit


def _xgboost(threads: int, categorical: list[str]) -> Callable:
    import xgboost

    def fit(train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame, y_val: np.ndarray):
        model = xgboost.XGBClassifier(n_estimators=ROUNDS, tree_method="hist",
                                      enable_categorical=True, eval_metric="logloss",
                                      early_stopping_rounds=PATIENCE, n_jobs=threads,
                                      random_state=0)
        model.fit(train, y, eval_set=[(val, y_val)], verbose=False)
        return model, model.best_iteration + 1
    return fit


class _CatBoostModel:
    """CatBoost wants categoricals as text; this converts them on each predict too."""

    def __init__(self, model: Any, categorical: list[str]) -> None:
        self.model, self.categorical = model, categorical

    @staticmethod
    def frame(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
        return X.astype({c: str for c in categorical}) if categorical else X

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self.frame(X, self.categorical))


def _catboost(threads: int, categorical: list[str]) -> Callable:
    import catboost

    def fit(train: pd.DataFrame, y: np.ndarray, val: pd.DataFrame, y_val: np.ndarray):
        model = catboost.CatBoostClassifier(iterations=ROUNDS, early_stopping_rounds=PATIENCE,
                                            thread_count=threads, random_seed=0, verbose=False,
                                            allow_writing_files=False, cat_features=categorical)
        model.fit(_CatBoostModel.frame(train, categorical), y,
                  eval_set=(_CatBoostModel.frame(val, categorical), y_val))
        return _CatBoostModel(model, categorical), model.get_best_iteration() + 1
    return fit


LIBRARIES: dict[str, tuple[str, Callable]] = {
    "sklearn_hgb_default": ("scikit-learn", _hgb_default),
    "sklearn_hgb_early_stopping": ("scikit-learn", _hgb_early),
    "lightgbm": ("lightgbm", _lightgbm),
    "xgboost": ("xgboost", _xgboost),
    "catboost": ("catboost", _catboost),
}


def _validation_split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)


def _predict_speed(model: Any, test: pd.DataFrame) -> tuple[float, float]:
    """Batch predict_proba rows/s on the test rows (best of 5) and single-row ms (median)."""
    batch = []
    for _ in range(5):
        began = time.perf_counter()
        model.predict_proba(test)
        batch.append(time.perf_counter() - began)
    one = test.iloc[:1]
    single = []
    for _ in range(100):
        began = time.perf_counter()
        model.predict_proba(one)
        single.append(time.perf_counter() - began)
    return len(test) / min(batch), statistics.median(single) * 1000


def measure(fixture: Fixture, tmp: Path) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    workspace = tmp / fixture.name
    workspace.mkdir()
    raw = fixture.raw()
    raw.to_csv(workspace / f"{fixture.name}.csv", index=False)
    record, _ = run_churnctl(workspace, "--data", f"{fixture.name}.csv", "--target",
                             fixture.target, "--only", "ingest", "--only", "validate",
                             "--only", "features")
    prepared: Prepared = fixture.prepare(raw)
    split = churnctl_split(workspace, record, prepared, fixture.target)
    train, test = tree_frame(prepared, split)
    y, y_test = prepared.y[split.train], prepared.y[split.test]
    fit_rows, val_rows = _validation_split(y)
    parts = (train.iloc[fit_rows], y[fit_rows], train.iloc[val_rows], y[val_rows])
    out: dict[str, Any] = {"train_rows": len(train), "fit_rows": len(fit_rows),
                           "validation_rows": len(val_rows), "test_rows": len(test),
                           "models": {}}
    for name, (_, make) in LIBRARIES.items():
        row: dict[str, Any] = {}
        for threads in THREADS:
            print(f"  {fixture.name}: {name}, {threads} thread(s)", file=sys.stderr)
            with threadpool_limits(threads):
                fit = make(threads, prepared.categorical)
                seconds = []
                for _ in range(REPEAT):
                    began = time.perf_counter()
                    model, rounds = fit(*parts)
                    seconds.append(time.perf_counter() - began)
                auc = roc_auc_score(y_test, model.predict_proba(test)[:, 1])
                rows_per_s, single_ms = _predict_speed(model, test)
            row[f"{threads}_thread"] = {
                "roc_auc": round(float(auc), 5), "rounds": int(rounds),
                "fit_s": round(min(seconds), 3),
                "predict_rows_per_s": round(rows_per_s),
                "predict_one_row_ms": round(single_ms, 3),
            }
        out["models"][name] = row
    return out


def _table(figures: dict[str, Any]) -> str:
    lines = [f"{'fixture':<22}{'model':<28}{'ROC AUC':>8}{'rounds':>7}{'fit s 1t':>9}"
             f"{'fit s 2t':>9}{'rows/s 1t':>11}{'rows/s 2t':>11}{'1-row ms':>9}"]
    for fixture, block in figures["fixtures"].items():
        for name, row in block["models"].items():
            one, two = row["1_thread"], row["2_thread"]
            lines.append(f"{fixture:<22}{name:<28}{one['roc_auc']:>8.4f}{one['rounds']:>7}"
                         f"{one['fit_s']:>9.3f}{two['fit_s']:>9.3f}"
                         f"{one['predict_rows_per_s']:>11,}{two['predict_rows_per_s']:>11,}"
                         f"{one['predict_one_row_ms']:>9.2f}")
    return "\n".join(lines)


def main() -> None:
    import os

    versions = {}
    for name, (distribution, _) in LIBRARIES.items():
        try:
            versions[distribution] = version(distribution)
        except Exception:
            raise SystemExit(f"{name} needs {distribution}: .venv/bin/python -m pip install "
                             "lightgbm xgboost catboost") from None
    figures: dict[str, Any] = {
        "code": code_state(),
        "versions": versions,
        "settings": {"rounds": ROUNDS, "early_stopping_patience": PATIENCE,
                     "validation": "stratified 20 % of churnctl's training rows, seed 0",
                     "fit_s": f"best of {REPEAT}", "threads": list(THREADS)},
        "fixtures": {},
    }
    start_load = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in FIXTURES:
            try:
                figures["fixtures"][fixture.name] = measure(fixture, Path(tmp))
            except BenchError as error:
                raise SystemExit(f"{fixture.name}: {error}") from None
    figures["load_average_1_5_15"] = {"start": start_load,
                                      "end": [round(v, 2) for v in os.getloadavg()]}
    write_results("gbm_libraries", figures)
    print(_table(figures))


if __name__ == "__main__":
    main()
