"""PSI and KS on synthetic samples, and the gauges the serving /metrics exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnctl.errors import DataError, UserError
from churnctl.monitoring import gauges
from churnctl.monitoring.drift import (
    NEW,
    Thresholds,
    categorical_drift,
    compare,
    numeric_drift,
    overall_status,
    psi,
    quantile_edges,
)

RNG = np.random.default_rng(7)
LIMITS = Thresholds()


def normal(n: int, shift: float = 0.0, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(shift, 1.0, n), name="x")


def test_psi_of_identical_shares_is_zero_and_grows_with_the_difference() -> None:
    shares = np.array([0.2, 0.3, 0.5])
    assert psi(shares, shares) == 0.0
    small = psi(shares, np.array([0.25, 0.3, 0.45]))
    large = psi(shares, np.array([0.5, 0.3, 0.2]))
    assert 0 < small < large
    # An emptied bin is floored, not infinite.
    assert np.isfinite(psi(shares, np.array([0.0, 0.5, 0.5])))


def test_same_distribution_gives_psi_near_zero_and_a_high_ks_pvalue() -> None:
    result = numeric_drift("x", normal(20_000, seed=1), normal(20_000, seed=2), LIMITS)
    assert result.psi < 0.01 and result.status == "ok"
    assert result.ks_pvalue is not None and result.ks_pvalue > 0.01
    assert len(result.bins) == 10 and sum(result.reference_share) == pytest.approx(1.0)
    # Deciles of the reference: each bin holds a tenth of it.
    assert result.reference_share == pytest.approx([0.1] * 10, abs=1e-3)


def test_shifted_distribution_fails_and_ks_rejects() -> None:
    result = numeric_drift("x", normal(5_000, seed=1), normal(5_000, shift=1.0, seed=2), LIMITS)
    assert result.psi > LIMITS.fail and result.status == "fail"
    assert result.ks_pvalue is not None and result.ks_pvalue < 1e-6
    assert result.current_mean == pytest.approx(1.0, abs=0.1)
    warn = numeric_drift("x", normal(20_000, seed=1), normal(20_000, shift=0.4, seed=2), LIMITS)
    assert warn.status == "warn"


def test_point_masses_collapse_duplicate_edges() -> None:
    # Count features are mostly zeros: the zero mass must be one bin, not several empty ones.
    counts = pd.Series(np.where(RNG.random(10_000) < 0.7, 0, RNG.poisson(3, 10_000)))
    edges = quantile_edges(counts.to_numpy(float), 10)
    assert len(edges) == len(np.unique(edges)) and edges[0] == 0
    same = numeric_drift("c", counts, counts.sample(frac=1.0, random_state=1), LIMITS)
    assert same.psi == pytest.approx(0.0, abs=1e-9)


def test_missing_values_get_their_own_bin() -> None:
    ref = normal(2_000, seed=1)
    cur = normal(2_000, seed=2)
    cur[:1_000] = np.nan
    result = numeric_drift("x", ref, cur, LIMITS)
    assert result.bins[-1] == "(missing)" and result.current_share[-1] == pytest.approx(0.5)
    assert result.status == "fail"


def test_numeric_text_is_parsed_and_junk_is_named() -> None:
    as_text = pd.Series([" 1.5", "2", "", "3 "], name="x")
    result = numeric_drift("x", pd.Series([1.5, 2.0, 3.0, 2.5], name="x"), as_text, LIMITS)
    assert result.n_current == 4
    with pytest.raises(DataError, match=r"feature x expects numbers, found 'abc'"):
        numeric_drift("x", pd.Series([1.0, 2.0], name="x"), pd.Series(["1", "abc"], name="x"),
                      LIMITS)


def test_categorical_psi_and_new_categories() -> None:
    ref = pd.Series(RNG.choice(["IN", "US", "UK"], 5_000, p=[0.5, 0.3, 0.2]))
    same = pd.Series(RNG.choice(["IN", "US", "UK"], 5_000, p=[0.5, 0.3, 0.2]))
    moved = pd.Series(RNG.choice(["IN", "US", "UK", "BR"], 5_000, p=[0.2, 0.2, 0.2, 0.4]))
    assert categorical_drift("country", ref, same, LIMITS).psi < 0.01
    result = categorical_drift("country", ref, moved, LIMITS)
    assert result.status == "fail" and result.new_categories == ["BR"]
    assert result.bins[-1] == NEW and result.current_share[-1] == pytest.approx(0.4, abs=0.03)
    # Stray spaces and blanks: the same category, and one "(missing)" category.
    messy = categorical_drift("country", pd.Series(["IN", "US"] * 50),
                              pd.Series([" IN", "US "] * 50), LIMITS)
    assert messy.psi == 0.0


def test_compare_names_missing_columns_instead_of_skipping_them() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "c": [1.0, 1.0, 2.0]})
    with pytest.raises(DataError, match=r"current data has no column\(s\) c; it has a, b"):
        compare(frame, frame.drop(columns=["c"]), ["a", "c"], ["b"], LIMITS)
    with pytest.raises(DataError, match="reference data has no column"):
        compare(frame.drop(columns=["b"]), frame, ["a"], ["b"], LIMITS)
    results = compare(frame, frame, ["a"], ["b"], LIMITS)
    assert [r.name for r in results] == ["a", "b"] and overall_status(results) == "ok"


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(UserError, match="warn <= fail"):
        Thresholds(warn=0.3, fail=0.2)
    assert Thresholds(0.1, 0.25).status(0.1) == "warn"
    assert Thresholds(0.1, 0.25).status(0.25) == "fail"


def write_result(root: Path, status: str, psis: dict[str, float]) -> None:
    folder = root / "reports" / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps({
        "status": status, "timestamp": 1_700_000_000.5,
        "features": [{"name": k, "psi": v} for k, v in psis.items()]}))


def test_drift_gauges_read_the_latest_result(tmp_path: Path) -> None:
    assert gauges.drift_gauges(tmp_path) == {}  # no check yet: no series at all
    write_result(tmp_path, "fail", {"country": 0.4, 'we"ird\\name': 0.01})
    found = gauges.drift_gauges(tmp_path)
    assert found == {
        "churn_drift_status": 2.0,
        "churn_drift_last_check_timestamp_seconds": 1_700_000_000.5,
        'churn_feature_psi{feature="country"}': 0.4,
        'churn_feature_psi{feature="we\\"ird\\\\name"}': 0.01,
    }
    (tmp_path / "reports" / "drift" / "latest.json").write_text("{half a file")
    assert gauges.drift_gauges(tmp_path) == {}


def test_last_successful_retrain_skips_failed_and_trainless_runs(tmp_path: Path) -> None:
    runs = tmp_path / ".churnctl" / "runs"
    runs.mkdir(parents=True)
    assert gauges.retrain_gauges(tmp_path) == {}
    rows = {"ok": [{"name": "train", "status": "ran"}], "cached": [{"name": "train",
            "status": "cached"}], "partial": [{"name": "ingest", "status": "ran"}]}
    for run_id, status, stages, finished in (
            ("20250101-000000-aaaaaa", "succeeded", rows["ok"], "2025-01-01T00:10:00+00:00"),
            ("20250102-000000-bbbbbb", "succeeded", rows["cached"], "2025-01-02T00:01:00+00:00"),
            ("20250103-000000-cccccc", "failed", rows["ok"], "2025-01-03T00:10:00+00:00"),
            ("20250104-000000-dddddd", "succeeded", rows["partial"], "2025-01-04T00:10:00+00:00")):
        (runs / f"{run_id}.json").write_text(json.dumps(
            {"run_id": run_id, "status": status, "stages": stages, "finished_at": finished}))
    assert gauges.retrain_gauges(tmp_path) == {
        "churn_last_successful_retrain_timestamp_seconds": 1735776060.0}


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (apt-get install prometheus)")
def test_gauges_are_valid_prometheus_text(tmp_path: Path) -> None:
    write_result(tmp_path, "warn", {"country": 0.12, "events_30d": 0.03})
    text = gauges.prometheus_text(gauges.drift_gauges(tmp_path))
    assert text.count("# TYPE churn_feature_psi gauge") == 1
    done = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr  # parses, and lints clean


def test_collector_exports_through_prometheus_client(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=True)
    registry.register(gauges.MonitoringCollector(tmp_path))
    assert generate_latest(registry) == b""  # nothing yet: no series
    write_result(tmp_path, "fail", {"country": 0.4, "plan": 0.0})
    (tmp_path / ".churnctl" / "runs").mkdir(parents=True)
    (tmp_path / ".churnctl" / "runs" / "20250101-000000-a.json").write_text(json.dumps(
        {"status": "succeeded", "stages": [{"name": "train", "status": "ran"}],
         "finished_at": "2025-01-01T00:00:00+00:00"}))
    text = generate_latest(registry).decode()
    assert 'churn_feature_psi{feature="country"} 0.4' in text
    assert "churn_drift_status 2.0" in text
    assert "churn_last_successful_retrain_timestamp_seconds 1.7356896e+09" in text
    if shutil.which("promtool"):
        done = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
