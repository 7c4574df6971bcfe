"""`churnctl parity`: stage-by-stage comparison of profiles run on the same data.

Unit tests pin the comparisons (tolerance, row alignment, schema, labels); the end-to-end test
runs v1, v2 and a profile that drops a feature window through the real pipeline and checks
that v2 is equal at every boundary and the third is caught where it differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnctl.parity import Tolerance, compare_metrics, compare_values, same_data
from churnctl.profile import load_profile

SMALL = ["--set", "ingest.users=400", "--set", "ingest.days=100"]


def _frame(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(len(values)), "x": values})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
       st.floats(0, 0.9))
def test_values_within_tolerance_are_equal(values: list[float], share: float) -> None:
    a = _frame(values)
    b = a.assign(x=a.x * (1 + share * 1e-7))  # below rtol 1e-6
    assert compare_values("features", "t", a, b, ["user_id", "x"], "p", Tolerance()).ok


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1, 1e6, allow_nan=False), min_size=1, max_size=30),
       st.integers(0, 29))
def test_a_value_beyond_tolerance_is_caught(values: list[float], where: int) -> None:
    a = _frame(values)
    b = a.copy()
    b.loc[where % len(b), "x"] *= 1.001
    check = compare_values("features", "t", a, b, ["user_id", "x"], "p", Tolerance())
    assert check.ok is False and "x (1 rows)" in check.detail


def test_nan_equals_nan_and_text_compares_exactly() -> None:
    a = pd.DataFrame({"x": [1.0, np.nan], "plan": ["free", "paid"]})
    assert compare_values("f", "t", a, a.copy(), ["x", "plan"], "p", Tolerance()).ok
    b = a.assign(plan=["free", "Paid"])
    assert not compare_values("f", "t", a, b, ["x", "plan"], "p", Tolerance()).ok


def test_metrics_tolerance() -> None:
    a = {"pr_auc": 0.5, "validation_checks_total": 27}
    assert compare_metrics("train", a, {"pr_auc": 0.5004, "validation_checks_total": 30},
                           "p", Tolerance()).ok
    check = compare_metrics("train", a, {"pr_auc": 0.49}, "p", Tolerance())
    assert check is not None and not check.ok and "pr_auc 0.5 -> 0.49" in check.detail


def test_every_profile_reads_the_first_profiles_data() -> None:
    first = load_profile("v1", ["ingest.users=123"])
    second = load_profile("v2")
    assert second.stages["ingest"].options["users"] != 123
    aligned = same_data([first, second])
    assert aligned[1].stages["ingest"].options["users"] == 123
    assert aligned[1].stages["train"] == second.stages["train"]
    assert aligned[1].tracking == second.tracking


@pytest.mark.slow
def test_v1_v2_equal_and_a_changed_profile_caught(cli, tmp_path: Path) -> None:
    worse = tmp_path / "fewer-windows.yaml"
    worse.write_text("name: fewer-windows\nextends: v1\nstages:\n"
                     "  features:\n    options: {windows: [7, 14]}\n")
    result = cli("parity", "v1", "v2", str(worse), "--json", *SMALL)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["same"] is False
    by = {}
    for check in report["checks"]:
        by.setdefault(check["profile"], []).append(check)
    assert {c["stage"] for c in by["v2"]} == {"ingest", "validate", "features", "train"}
    assert all(c["ok"] for c in by["v2"]), [c for c in by["v2"] if not c["ok"]]
    assert {c["kind"] for c in by["v2"]} >= {"schema", "rows", "values", "labels", "verdict",
                                             "metrics"}
    changed = [c for c in by["fewer-windows"] if c["ok"] is False]
    schema = [c for c in changed if c["stage"] == "features" and c["kind"] == "schema"]
    assert schema and "missing" in schema[0]["detail"] and "_30d" in schema[0]["detail"]
    # Ingest and validate are untouched by a features option: they stay equal.
    assert not [c for c in changed if c["stage"] in ("ingest", "validate")]


def test_one_profile_is_bad_input(cli) -> None:
    result = cli("parity", "v1")
    assert result.exit_code == 2
    assert "two or more profiles" in result.stderr


def test_unknown_profile_is_bad_input(cli) -> None:
    result = cli("parity", "v1", "v9")
    assert result.exit_code == 2
    assert "unknown profile 'v9'" in result.stderr


@pytest.mark.slow
def test_v1_v3_features_through_feast_equal_pandas(cli) -> None:
    """v3 swaps validate to Great Expectations and features to Feast: same data, same tables."""
    pytest.importorskip("feast", reason="v3's features backend needs churnctl[feast]")
    pytest.importorskip("great_expectations", reason="v3's validate needs churnctl[gx]")
    result = cli("parity", "v1", "v3", "--json", *SMALL)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"][1]["backends"]["features"] == "feast"
    features = [c for c in report["checks"] if c["stage"] == "features"]
    assert {c["subject"] for c in features if c["kind"] == "values"} >= {"train", "test"}
    assert all(c["ok"] for c in report["checks"])
