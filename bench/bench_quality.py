"""Model quality of `churnctl run --data` against careful by-hand baselines, and its wall time.

For each generated export of tests/fixtures_tables.py (telecom-like 7,043 rows, bank-like
10,000 rows, numeric telecom-like 5,000 rows) the bench writes the CSV, runs
`churnctl run --data X.csv --target T --json` as a user would (a subprocess in a fresh
directory, no other flags), and reads the test ROC AUC of the chosen model from the run's
test predictions. Then it fits two by-hand baselines on the very rows churnctl put in its
train and test sets (found through the run record: stage artifact -> manifest -> tables):

- (a) one-hot categoricals + median-imputed, standardised numerics + LogisticRegression;
- (b) a default HistGradientBoostingClassifier with native categoricals.

The by-hand preprocessing is what a careful person writes for each table: drop the id, row
number and surname columns, parse TotalCharges (text with blanks) to numbers, treat the area
code as a label. Also timed: the default v1 event pipeline (`churnctl run` in an empty dir).

    .venv/bin/python bench/bench_quality.py     # -> bench/results/quality.json and a table
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

from _common import CHURNCTL, write_results  # noqa: E402

from tests.fixtures_tables import bank_like, numeric_telecom_like, telecom_like  # noqa: E402

AIM = 0.005  # churnctl should beat the best baseline by this much to meet the aim
V1_LIMIT_S = 10.0
V1_REPEAT = 3  # the machine is shared: the median of three full runs


class BenchError(Exception):
    """churnctl failed, or its artifacts do not match the raw table."""


@dataclass(frozen=True)
class Prepared:
    """A raw export after careful by-hand cleaning: features, 0/1 target and row key."""

    X: pd.DataFrame
    y: np.ndarray
    numeric: list[str]
    categorical: list[str]
    key: pd.Series  # what churnctl's id column holds for each raw row, as text


def _prep_telecom(raw: pd.DataFrame) -> Prepared:
    X = raw.drop(columns=["customerID", "Churn"])
    X["TotalCharges"] = pd.to_numeric(X["TotalCharges"].str.strip().replace("", np.nan))
    numeric = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
    return Prepared(X, (raw["Churn"] == "Yes").to_numpy(int), numeric,
                    [c for c in X.columns if c not in numeric], raw["customerID"].astype(str))


def _prep_bank(raw: pd.DataFrame) -> Prepared:
    X = raw.drop(columns=["RowNumber", "CustomerId", "Surname", "Exited"])
    categorical = ["Geography", "Gender"]
    return Prepared(X, raw["Exited"].to_numpy(int), [c for c in X.columns if c not in categorical],
                    categorical, raw["CustomerId"].astype(str))


def _prep_numeric_telecom(raw: pd.DataFrame) -> Prepared:
    X = raw.drop(columns=["Churn"])
    categorical = ["Area code"]  # three area codes: a label, not a quantity
    # No id column: churnctl keys rows by their 1-based number in the file.
    return Prepared(X, raw["Churn"].astype(int).to_numpy(),
                    [c for c in X.columns if c not in categorical], categorical,
                    pd.Series(np.arange(1, len(raw) + 1)).astype(str))


@dataclass(frozen=True)
class Fixture:
    name: str
    make: Callable[..., pd.DataFrame]
    rows: int
    target: str
    prepare: Callable[[pd.DataFrame], Prepared]

    def raw(self) -> pd.DataFrame:
        return self.make(self.rows, seed=0)


FIXTURES = [
    Fixture("telecom_like", telecom_like, 7043, "Churn", _prep_telecom),
    Fixture("bank_like", bank_like, 10_000, "Exited", _prep_bank),
    Fixture("numeric_telecom_like", numeric_telecom_like, 5000, "Churn", _prep_numeric_telecom),
]


def run_churnctl(workspace: Path, *args: str) -> tuple[dict[str, Any], float]:
    """`churnctl run --json ARGS` in `workspace` as a child process: its record and wall s."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CHURNCTL_WORKSPACE", "CHURNCTL_PROFILE")}
    began = time.perf_counter()
    done = subprocess.run([*CHURNCTL, "run", "--json", *args], cwd=workspace, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"churnctl run {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(done.stdout), wall


def _artifact(workspace: Path, record: dict[str, Any], stage: str) -> tuple[Path, dict]:
    """A stage's artifact directory and manifest, found through the run record."""
    row = next(r for r in record["stages"] if r["name"] == stage)
    path = workspace / row["artifact"]
    return path, json.loads((path / "manifest.json").read_text())


def stage_table(workspace: Path, record: dict[str, Any], stage: str, table: str) -> pd.DataFrame:
    path, manifest = _artifact(workspace, record, stage)
    return pd.read_parquet(path / manifest["contents"]["tables"][table]["path"])


def code_state() -> dict[str, Any]:
    """The commit measured and the churnctl files changed on top of it (others may be editing
    the checkout while a bench runs)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "churnctl").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None,
            "uncommitted_churnctl_files": changed}


def _as_key(values: pd.Series) -> pd.Series:
    """Ids as text, whether churnctl stored them as text, integers or floats."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("int64").astype(str)
    return values.astype(str)


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # positions in the raw frame, in churnctl's order
    test: np.ndarray
    id_column: str


def churnctl_split(workspace: Path, record: dict[str, Any], prepared: Prepared,
                   target: str) -> Split:
    """The raw rows churnctl put in train.parquet and test.parquet, checked row by row."""
    train = stage_table(workspace, record, "features", "train")
    test = stage_table(workspace, record, "features", "test")
    id_column = str(train.columns[0])  # churnctl puts the id (or row_number) first
    position = pd.Series(np.arange(len(prepared.key)), index=prepared.key.to_numpy())
    parts = []
    for frame in (train, test):
        rows = position.loc[_as_key(frame[id_column]).to_numpy()].to_numpy()
        if not np.array_equal(prepared.y[rows], frame[target].to_numpy(int)):
            raise BenchError(f"{id_column}: churnctl's {target} differs from the raw rows")
        parts.append(rows)
    if len(set(parts[0]) & set(parts[1])) or len(parts[0]) + len(parts[1]) != len(prepared.y):
        raise BenchError("churnctl's train and test rows overlap or miss rows")
    return Split(parts[0], parts[1], id_column)


def churnctl_test_auc(workspace: Path, record: dict[str, Any], prepared: Prepared,
                      split: Split) -> float:
    """ROC AUC of the chosen model's test predictions, after checking they are the test rows."""
    from sklearn.metrics import roc_auc_score

    predictions = stage_table(workspace, record, "train", "test_predictions")
    id_column = str(predictions.columns[0])
    rows = pd.Series(np.arange(len(prepared.key)), index=prepared.key.to_numpy()).loc[
        _as_key(predictions[id_column]).to_numpy()].to_numpy()
    if sorted(rows) != sorted(split.test) or not np.array_equal(
            prepared.y[rows], predictions["y_true"].to_numpy(int)):
        raise BenchError("test_predictions.parquet does not hold churnctl's test rows")
    return float(roc_auc_score(predictions["y_true"], predictions["proba"]))


def tree_frame(prepared: Prepared, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test features for tree models: numerics as floats, categoricals as pandas
    categories with the training rows' levels (an unseen level is missing)."""
    X = prepared.X.copy()
    for column in prepared.numeric:
        X[column] = X[column].astype(float)
    for column in prepared.categorical:
        levels = sorted(X[column].iloc[split.train].astype(str).unique())
        X[column] = pd.Categorical(X[column].astype(str), categories=levels)
    return X.iloc[split.train], X.iloc[split.test]


def baseline_logistic(prepared: Prepared, split: Split) -> float:
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = prepared.X.copy()
    for column in prepared.categorical:
        X[column] = X[column].astype(str)
    model = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), prepared.numeric),
        (OneHotEncoder(handle_unknown="ignore"), prepared.categorical)),
        LogisticRegression(max_iter=5000))
    model.fit(X.iloc[split.train], prepared.y[split.train])
    proba = model.predict_proba(X.iloc[split.test])[:, 1]
    return float(roc_auc_score(prepared.y[split.test], proba))


def baseline_hgb(prepared: Prepared, split: Split) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    train, test = tree_frame(prepared, split)
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(train, prepared.y[split.train])
    return float(roc_auc_score(prepared.y[split.test], model.predict_proba(test)[:, 1]))


def measure(fixture: Fixture, tmp: Path) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    workspace = tmp / fixture.name
    workspace.mkdir()
    raw = fixture.raw()
    raw.to_csv(workspace / f"{fixture.name}.csv", index=False)
    record, wall = run_churnctl(workspace, "--data", f"{fixture.name}.csv",
                                "--target", fixture.target)
    prepared = fixture.prepare(raw)
    split = churnctl_split(workspace, record, prepared, fixture.target)
    auc = churnctl_test_auc(workspace, record, prepared, split)
    with threadpool_limits(1):
        logistic, hgb = baseline_logistic(prepared, split), baseline_hgb(prepared, split)
    best = max(logistic, hgb)
    train_row = next(r for r in record["stages"] if r["name"] == "train")
    delta = auc - best
    return {
        "rows": len(raw), "target": fixture.target, "id_column": split.id_column,
        "train_rows": len(split.train), "test_rows": len(split.test),
        "churn_rate": round(float(prepared.y.mean()), 4),
        "churnctl_chosen": train_row.get("summary", {}).get("chosen"),
        "churnctl_roc_auc": round(auc, 5),
        "churnctl_reported_roc_auc": record.get("metrics", {}).get("roc_auc"),
        "baseline_logistic_roc_auc": round(logistic, 5),
        "baseline_hgb_roc_auc": round(hgb, 5),
        "best_baseline": "logistic" if logistic >= hgb else "hgb",
        "best_baseline_roc_auc": round(best, 5),
        "delta": round(delta, 5),
        "pass": bool(delta >= 0),
        "aim": bool(delta >= AIM),
        "churnctl_wall_s": round(wall, 2),
        "churnctl_stage_s": {r["name"]: r.get("seconds") for r in record["stages"]},
    }


def _table(figures: dict[str, Any]) -> str:
    lines = [f"{'fixture':<22}{'rows':>7} {'chosen':<24}{'churnctl':>9}{'LR':>8}{'HGB':>8}"
             f"{'delta':>9}  pass  aim {'wall s':>7}"]
    for name, f in figures["fixtures"].items():
        if "error" in f:
            lines.append(f"{name:<22}FAILED: {f['error'].splitlines()[0]}")
            continue
        lines.append(f"{name:<22}{f['rows']:>7} {f['churnctl_chosen'] or '?':<24}"
                     f"{f['churnctl_roc_auc']:>9.4f}{f['baseline_logistic_roc_auc']:>8.4f}"
                     f"{f['baseline_hgb_roc_auc']:>8.4f}{f['delta']:>+9.5f}  "
                     f"{'yes' if f['pass'] else 'NO':<6}{'yes' if f['aim'] else 'no':<3}"
                     f"{f['churnctl_wall_s']:>7.2f}")
    if figures.get("table_10k_wall_s") is not None:
        lines.append(f"10,000-row table (bank_like) wall: {figures['table_10k_wall_s']:.2f} s")
    v1 = figures["v1_default_run"]
    if "error" in v1:
        lines.append(f"v1 default pipeline FAILED: {v1['error'].splitlines()[0]}")
    else:
        lines.append(f"v1 default pipeline wall: {v1['wall_s']:.2f} s median of "
                     f"{len(v1['samples_s'])}, {v1['min_s']:.2f} s min (limit "
                     f"{V1_LIMIT_S:.0f} s: {'ok' if v1['pass'] else 'OVER'})")
    return "\n".join(lines)


def _v1_run(tmp: Path) -> dict[str, Any]:
    walls = []
    for attempt in range(V1_REPEAT):  # a fresh empty directory each time: a full run
        v1 = tmp / f"v1-{attempt}"
        v1.mkdir()
        print("v1: churnctl run (default profile, built-in event data)", file=sys.stderr)
        record, wall = run_churnctl(v1)
        walls.append(wall)
    return {"wall_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
            "samples_s": [round(w, 2) for w in walls], "limit_s": V1_LIMIT_S,
            "pass": statistics.median(walls) < V1_LIMIT_S,
            "pr_auc": record.get("metrics", {}).get("pr_auc"),
            "last_run_stage_s": {r["name"]: r.get("seconds") for r in record["stages"]}}


def main() -> int:
    figures: dict[str, Any] = {"code": code_state(), "aim_delta": AIM, "fixtures": {}}
    start_load = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in FIXTURES:
            print(f"{fixture.name}: churnctl run --data ... --target {fixture.target}",
                  file=sys.stderr)
            try:
                figures["fixtures"][fixture.name] = measure(fixture, Path(tmp))
            except BenchError as error:
                figures["fixtures"][fixture.name] = {"error": str(error)}
        figures["table_10k_wall_s"] = figures["fixtures"]["bank_like"].get("churnctl_wall_s")
        try:
            figures["v1_default_run"] = _v1_run(Path(tmp))
        except BenchError as error:
            figures["v1_default_run"] = {"error": str(error), "pass": False}
    figures["load_average_1_5_15"] = {"start": start_load,
                                      "end": [round(v, 2) for v in os.getloadavg()]}
    write_results("quality", figures)
    print(_table(figures))
    failed = [n for n, f in figures["fixtures"].items() if "error" in f]
    return 1 if failed or "error" in figures["v1_default_run"] else 0


if __name__ == "__main__":
    sys.exit(main())
