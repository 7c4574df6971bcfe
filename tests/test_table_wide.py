"""A 2,000-column customer table (issue 10): ingest, validate and features without pandas
PerformanceWarnings, and the same column plan as the per-column path on a sample of columns."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnctl.domain import table_infer as T
from churnctl.domain.table_importance import permutation_importance
from churnctl.domain.table_quality import check_customer_table
from churnctl.domain.table_read import read_table
from churnctl.domain.table_split import random_split

ROWS = 300


def _wide(rows: int = ROWS, width: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols: dict[str, object] = {f"x{i}": rng.normal(size=rows) for i in range(width)}
    cols |= {f"c{i}": rng.choice(["a", "b", "c"], rows) for i in range(width - 20)}
    # Columns the fast paths must hand to the per-column path, or read exactly like it.
    blanks = rng.normal(size=rows).round(2).astype(str).astype(object)
    blanks[::7] = ""
    cols |= {
        "ints": rng.integers(0, 5, rows).astype(str), "ids_no": np.arange(rows).astype(str),
        "blank_x": blanks, "money": [f"${v:,.2f}" for v in rng.uniform(0, 5000, rows)],
        "pct": [f"{v:.1f}%" for v in rng.uniform(0, 100, rows)],
        "padded": [f" {v:.3f} " for v in rng.normal(size=rows)],
        "flag": rng.choice(["Yes", "No", ""], rows), "tf": rng.choice(["t", "f"], rows),
        "when": [f"2024-0{m}-1{d}" for m, d in zip(rng.integers(1, 9, rows),
                                                  rng.integers(0, 9, rows), strict=True)],
        "mixed": rng.choice(["a1", "b2", "c", "n/a"], rows), "empty": [""] * rows,
        "const": ["same"] * rows, "one_or_blank": rng.choice(["x", ""], rows),
        "words": [f"w{i}" for i in rng.integers(0, 80, rows)], "name": [f"n{i}" for i in
                                                                     range(rows)],
        "huge": rng.choice(["1e150", "2", "3"], rows), "inf": rng.choice(["inf", "1", "2"], rows),
        "comma_eu": [f"{v:.2f}".replace(".", ",") for v in rng.normal(size=rows)],
        "case": rng.choice(["Male", "male ", "MALE", "Female"], rows),
        "many": [f"lvl{i}" for i in rng.integers(0, 120, rows)],
    }
    frame = pd.DataFrame(cols)
    frame["Churn"] = rng.choice(["Yes", "No"], rows)
    return frame


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wide") / "wide.csv"
    _wide().to_csv(path, index=False)
    return path


def _reference(frame: pd.DataFrame, name: str, hint: bool = False) -> T.ColumnPlan:
    """The per-column path, as infer_plan ran it before the fast paths."""
    plan = T.infer_column(name, frame[name], hint)
    T._role(plan, frame[name], len(frame))
    return plan


def test_wide_table_ingest_validate_features_no_performance_warning(wide_csv: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        raw = read_table(wide_csv)
        plan = T.infer_plan(raw.frame, wide_csv, "Churn")
        table, _ = T.apply_plan(plan, raw.frame, wide_csv, with_target=True)
        table["Churn"] = table["Churn"].astype("int8")
        numeric = [c.name for c in plan.features if c.model_kind == "numeric"]
        categorical = [c.name for c in plan.features if c.model_kind == "categorical"]
        profile = {"target": {"column": "Churn", "positive": "Yes", "negative": "No"},
                   "id": plan.id, "time": None, "rows_blank_target": 0,
                   "features": {"numeric": numeric, "categorical": categorical}}
        assert check_customer_table(table, profile)
        train, test = random_split(table, "Churn", 0.2, 42)
    assert len(plan.columns) == 2001 and len(train) + len(test) == ROWS

    special = [c for c in raw.frame.columns if not str(c)[1:].isdigit() and c != "Churn"]
    rng = np.random.default_rng(1)
    sample = special + list(rng.choice([c for c in raw.frame.columns if c not in special
                                        and c != "Churn"], 60, replace=False))
    by_name = {c.name: c for c in plan.columns}
    for name in sample:
        assert asdict(by_name[name]) == asdict(_reference(raw.frame, name)), name
    # Applying the plan reads the same values as the per-column path.
    for name in sample:
        column = by_name[name]
        if column.role != "feature":
            continue
        expected, _ = T._parse(column, raw.frame[name])
        pd.testing.assert_series_equal(table[name], expected.rename(name), check_names=False)
    assert by_name["x0"].kind == "numeric" and by_name["c0"].kind == "categorical"


def test_fast_paths_match_on_awkward_cells(tmp_path: Path) -> None:
    cells = {
        "ws": [" 1", "2 ", "\t3", "4"] * 10, "big": ["12345678901234567890", "1", "2", "3"] * 10,
        "neg0": ["-0", "0", "0.0", "1"] * 10, "na_word": ["NULL", "x", "y", "None"] * 10,
        "nan_text": ["nan", "1", "2", "3"] * 10, "uni": ["\u0663", "a", "b", "c"] * 10,
        "yes": ["Y", "n", "y", "N"] * 10, "inf_word": ["Infinity", "a", "b", "-inf"] * 10,
        "Churn": ["Yes", "No"] * 20,
    }
    frame = pd.DataFrame(cells, dtype=object)
    plan = T.infer_plan(frame, tmp_path / "t.csv", "Churn")
    for column in plan.columns[:-1]:
        assert asdict(column) == asdict(_reference(frame, column.name)), column.name


def test_to_frame_of_a_wide_model_is_one_unfragmented_frame() -> None:
    import warnings

    from churnctl.domain.model import ChurnModel, FeatureSpec

    data = pd.DataFrame({f"n{i}": ["1", None, "3"] for i in range(1500)}
                        | {f"c{i}": ["x", None, "y"] for i in range(1500)}, index=[5, 6, 7])
    specs = [FeatureSpec(f"n{i}", "numeric") for i in range(1500)] + [
        FeatureSpec(f"c{i}", "categorical") for i in range(1500)]
    model = ChurnModel(None, specs, "logistic_regression")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        frame = model.to_frame(data)
    assert list(frame.columns) == model.feature_names and list(frame.index) == [5, 6, 7]
    assert frame["n0"].tolist()[::2] == [1.0, 3.0] and frame["n0"].isna().tolist()[1]
    assert frame["c0"].tolist() == ["x", None, "y"]


def test_importance_caps_wide_tables_and_matches_the_pipeline_on_narrow_ones() -> None:
    from churnctl.domain.modeling import build_estimator

    rng = np.random.default_rng(0)
    rows = 200
    x = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(150)})
    x["c"] = rng.choice(["a", "b", None], rows).astype(object)
    y = (x["x0"] + rng.normal(size=rows) * 0.5 > 0).astype(int).to_numpy()
    numeric = [c for c in x.columns if c != "c"]
    for algorithm in ("logistic_regression", "hist_gradient_boosting"):
        estimator = build_estimator(algorithm, numeric, ["c"], 0, {"max_iter": 20})
        estimator.fit(x, y)
        wide = permutation_importance(estimator, x, y, "roc_auc", 2, 500, 0, max_features=30)
        assert len(wide) == 30 and wide[0]["feature"] == "x0"
        narrow = x[["x0", "x1", "c"]]
        small = build_estimator(algorithm, ["x0", "x1"], ["c"], 0, {"max_iter": 20})
        small.fit(narrow, y)
        fast = permutation_importance(small, narrow, y, "roc_auc", 3, 500, 0)
        slow = _pipeline_importance(small, narrow, y)
        assert fast == slow


class _Opaque:
    """A pipeline seen from outside only: importance takes its one-call-per-column path."""

    def __init__(self, estimator: object) -> None:
        self.estimator = estimator

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(frame)  # type: ignore[attr-defined]


def _pipeline_importance(estimator: object, frame: pd.DataFrame, y: np.ndarray) -> list:
    return permutation_importance(_Opaque(estimator), frame, y, "roc_auc", 3, 500, 0)


def test_single_feature_auc_matches_roc_auc_score() -> None:
    from sklearn.metrics import roc_auc_score

    from churnctl.domain.quality import single_feature_auc

    rng = np.random.default_rng(3)
    rows = 400
    y = pd.Series(rng.integers(0, 2, rows).astype("int8"))
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows).round(i % 3) for i in range(300)})
    frame["blank"] = np.where(rng.random(rows) < 0.3, np.nan, rng.normal(size=rows))
    frame["cat"] = rng.choice(["a", "b", None, "d"], rows).astype(object)
    frame["leak"] = y.astype(float)
    got = single_feature_auc(frame, y, list(frame.columns))
    for name in frame.columns:
        values = frame[name]
        if not pd.api.types.is_numeric_dtype(values):
            values = values.map(pd.Series(y.to_numpy(), index=values.index).groupby(values)
                                .mean())
        auc = roc_auc_score(y, pd.to_numeric(values, errors="coerce").fillna(-1e12))
        assert got[name] == round(float(max(auc, 1 - auc)), 4), name
