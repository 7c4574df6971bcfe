"""A wide customer table (issue 10): 1,000 numeric + 1,000 three-level text columns, 1,000 rows.

Times each stage's table work in-process (read, infer_plan, apply_plan, the validate checks,
the split, the leakage guard's single-feature AUCs, the model frame, permutation importance on
the HGB pipeline) and then `churnctl run --data wide.csv --target Churn` end to end in a fresh
directory, counting pandas PerformanceWarning lines on stderr.

    .venv/bin/python bench/bench_wide_table.py [--label after] [--no-cli]
        # -> bench/results/wide_table.json (figures kept per label, e.g. before/after)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
# BENCH_CHURNCTL_SRC: another checkout's sources (e.g. `git archive` of the commit before).
sys.path.insert(0, os.environ.get("BENCH_CHURNCTL_SRC", str(ROOT)))

from _common import RESULTS, write_results  # noqa: E402


def write_wide(path: Path, rows: int = 1000, width: int = 1000) -> None:
    """The table of the issue, byte for byte (same seed and construction)."""
    rng = np.random.default_rng(0)
    cols = {f"x{i}": rng.normal(size=rows) for i in range(width)} | {
        f"c{i}": rng.choice(["a", "b", "c"], rows) for i in range(width)}
    frame = pd.DataFrame(cols)
    frame["Churn"] = rng.choice(["Yes", "No"], rows)
    frame.to_csv(path, index=False)


def _timed(stages: dict[str, Any], name: str, fn: Any) -> Any:
    """Wall and CPU seconds: on a shared 2-core box the CPU figure is the steadier one."""
    began, cpu = time.perf_counter(), time.process_time()
    out = fn()
    stages[name] = {"wall": round(time.perf_counter() - began, 3),
                    "cpu": round(time.process_time() - cpu, 3)}
    return out


def stage_times(path: Path, importance: bool = True) -> dict[str, Any]:
    from churnctl.domain import table_evaluation  # noqa: F401  (imported before timing)
    from churnctl.domain.quality import single_feature_auc
    from churnctl.domain.table_infer import apply_plan, infer_plan
    from churnctl.domain.table_quality import check_customer_table
    from churnctl.domain.table_read import read_table
    from churnctl.domain.table_split import random_split

    stages: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = _timed(stages, "read_table", lambda: read_table(path))
        plan = _timed(stages, "infer_plan", lambda: infer_plan(raw.frame, path, "Churn"))
        table, _ = _timed(stages, "apply_plan",
                          lambda: apply_plan(plan, raw.frame, path, with_target=True))
        table["Churn"] = table["Churn"].astype("int8")
        numeric = [c.name for c in plan.features if c.model_kind == "numeric"]
        categorical = [c.name for c in plan.features if c.model_kind == "categorical"]
        profile = {"target": {"column": "Churn", "positive": "Yes", "negative": "No"},
                   "id": plan.id, "time": None, "rows_blank_target": 0,
                   "features": {"numeric": numeric, "categorical": categorical}}
        _timed(stages, "validate_checks", lambda: check_customer_table(table, profile))
        train, test = _timed(stages, "random_split",
                             lambda: random_split(table, "Churn", 0.2, 42))
        _timed(stages, "single_feature_auc",
               lambda: single_feature_auc(train, train["Churn"], numeric + categorical))
        stages.update(_model_times(train, test, numeric, categorical, importance))
    performance = sum(issubclass(w.category, pd.errors.PerformanceWarning) for w in caught)
    return {"stages_s": stages, "features": len(plan.features),
            "in_process_performance_warnings": performance}


def _model_times(train: pd.DataFrame, test: pd.DataFrame, numeric: list[str],
                 categorical: list[str], importance: bool) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from churnctl.domain import table_evaluation as E
    from churnctl.domain.model import ChurnModel, FeatureSpec
    from churnctl.domain.modeling import build_estimator

    specs = [FeatureSpec(n, "numeric") for n in numeric] + [
        FeatureSpec(n, "categorical") for n in categorical]
    estimator = build_estimator("hist_gradient_boosting", numeric, categorical, 42,
                                {"max_iter": 50})
    model = ChurnModel(estimator, specs, "hist_gradient_boosting", target="Churn")
    frame_of = getattr(E, "model_frame", None) or (lambda m, data: m.to_frame(data))
    stages: dict[str, Any] = {}
    x_train = _timed(stages, "model_frame", lambda: frame_of(model, train[model.feature_names]))
    x_test = frame_of(model, test[model.feature_names])
    with threadpool_limits(1):
        _timed(stages, "fit_hgb_50_iter", lambda: estimator.fit(x_train, train["Churn"]))
        if importance:
            _timed(stages, "permutation_importance", lambda: E.permutation_importance(
                estimator, x_test, test["Churn"].to_numpy(), "pr_auc", 3, 500, 42))
    return stages


def cli_run(path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        data = Path(tmp) / "wide.csv"
        data.write_bytes(path.read_bytes())
        env = dict(os.environ)
        began, cpu = time.perf_counter(), os.times()
        done = subprocess.run([sys.executable, "-m", "churnctl", "run", "--data", "wide.csv",
                               "--target", "Churn"], cwd=tmp, capture_output=True, text=True,
                              env=env)
        wall = round(time.perf_counter() - began, 2)
        after = os.times()
        child_cpu = after.children_user + after.children_system - cpu.children_user \
            - cpu.children_system
    return {"run_wall_s": wall, "run_cpu_s": round(child_cpu, 2), "returncode": done.returncode,
            "stderr_lines": len(done.stderr.splitlines()),
            "performance_warning_lines": done.stderr.count("PerformanceWarning")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="key the figures are kept under")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end run")
    parser.add_argument("--no-importance", action="store_true",
                        help="skip permutation importance (hours before issue 10's fix)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        path = Path(tmp) / "wide.csv"
        write_wide(path)
        figures: dict[str, Any] = stage_times(path, not args.no_importance)
        if not args.no_cli:
            figures |= cli_run(path)
    previous = RESULTS / "wide_table.json"
    kept = json.loads(previous.read_text()) if previous.exists() else {}
    kept.pop("machine", None)
    write_results("wide_table", {**kept, args.label: figures,
                                 "table": "1,000 rows x (1,000 numeric + 1,000 text) + target"})


if __name__ == "__main__":
    main()
