"""The load-time check: every serving path against predict_proba, supported sklearn versions,
and the compiled tree library for batch scoring (each refused the moment it differs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnctl.domain.model import ChurnModel, FeatureSpec
from churnctl.domain.modeling import build_estimator
from churnctl.serving import compiled_batch, trees
from churnctl.serving.scoring import (
    VERIFY_ROWS,
    Scorer,
    compile_scorer,
    sklearn_version_problem,
)
from tests.serving_demo import CATEGORIES, NUMERIC, demo_features
from tests.test_serving_scoring import _expected
from tests.test_serving_scoring import _messy as messy_rows

CATEGORICAL = list(CATEGORIES)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = demo_features(1500, seed=4)
    data.loc[::13, "quiz_avg_score_7d"] = np.nan
    return data


@pytest.fixture(scope="module")
def boosting(frame: pd.DataFrame) -> ChurnModel:
    """The train stage's gradient boosting (native categorical splits), kept small."""
    estimator = build_estimator("hist_gradient_boosting", NUMERIC, CATEGORICAL, 0)
    estimator.set_params(model__max_iter=40)
    specs = [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(frame[n].dropna().unique())))
        for n in CATEGORICAL]
    model = ChurnModel(estimator, specs, "hist_gradient_boosting")
    estimator.fit(model.to_frame(frame), frame["churn_label"])
    return model


def _messy(frame: pd.DataFrame) -> pd.DataFrame:
    return messy_rows(frame, 600, seed=8)


def _busiest_leaf(counts: np.ndarray, is_leaf: np.ndarray) -> int:
    """The leaf most training rows reach: real rows surely reach it too."""
    return int(np.flatnonzero(is_leaf)[np.argmax(counts[is_leaf])])


def test_single_rows_are_verified_one_call_each(boosting: ChurnModel,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = Scorer.score_records

    def spy(self: Scorer, records: Any) -> np.ndarray:
        sizes.append(len(records))
        return original(self, records)

    monkeypatch.setattr(Scorer, "score_records", spy)
    scorer = compile_scorer(boosting)
    assert scorer.kind == "trees", scorer.reason
    assert sizes.count(1) >= VERIFY_ROWS  # /predict's path: one record per call
    assert any(1 < size <= 16 for size in sizes)  # small batches (generated code)
    assert max(sizes) >= VERIFY_ROWS  # one large batch (sklearn's predict)
    assert scorer.verified_rows >= VERIFY_ROWS


def test_a_corrupted_leaf_in_the_generated_trees_is_refused(
        boosting: ChurnModel, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = boosting.estimator[-1]._predictors[0][0].nodes
    target = _busiest_leaf(nodes["count"], nodes["is_leaf"].astype(bool))
    leaf = trees._TreeSource.leaf

    def corrupted(self: Any, index: int) -> str:
        if self.number == 0 and index == target:
            return repr(float(self.nodes[index]["value"]) + 0.05)
        return leaf(self, index)

    monkeypatch.setattr(trees._TreeSource, "leaf", corrupted)
    scorer = compile_scorer(boosting, sample=frame)
    assert scorer.kind == "pipeline"
    # Single rows are checked first, as /predict scores them: that check must catch it.
    assert scorer.reason.startswith("compiled single-row path differs from the pipeline by 0.0")
    rows = frame.head(50)
    np.testing.assert_allclose(scorer.score_records(rows.to_dict("records")),
                               _expected(boosting, rows), rtol=0, atol=1e-12)


@pytest.mark.parametrize("version", ["1.3.2", "1.10.0", "1.10.0rc1", "2.0", "0.24.2", "main"])
def test_unsupported_sklearn_versions_are_refused(boosting: ChurnModel, version: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn

    assert version in sklearn_version_problem(version)
    monkeypatch.setattr(sklearn, "__version__", version)
    scorer = compile_scorer(boosting)
    assert scorer.kind == "pipeline" and scorer.head is None
    assert f"scikit-learn {version}" in scorer.reason or repr(version) in scorer.reason


@pytest.mark.parametrize("version", ["1.4.0", "1.4.2", "1.9.1", "1.9.0rc1"])
def test_supported_sklearn_versions(version: str) -> None:
    assert sklearn_version_problem(version) == ""


def test_tl2cgen_library_matches_predict_proba_and_is_chosen(
        boosting: ChurnModel, frame: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("tl2cgen")
    scorer = compile_scorer(boosting, sample=frame, library_dir=tmp_path)
    assert scorer.kind == "tl2cgen", scorer.reason
    assert scorer.library.threads == compiled_batch.BATCH_THREADS == 2
    assert not scorer.library.cached and scorer.library.path.parent == tmp_path
    rows = _messy(frame)
    np.testing.assert_allclose(scorer.score_frame(rows), _expected(boosting, rows),
                               rtol=0, atol=1e-9)
    # The library alone, on the matrix the classifier sees, unseen categories included.
    matrix = boosting.estimator[0].transform(boosting.to_frame(rows))
    np.testing.assert_allclose(scorer.library.score_matrix(matrix),
                               boosting.estimator[-1].predict_proba(matrix)[:, 1],
                               rtol=0, atol=1e-9)
    again = compile_scorer(boosting, sample=frame, library_dir=tmp_path, compile_library=False)
    assert again.kind == "tl2cgen" and again.library.cached
    assert [p.name for p in tmp_path.iterdir()] == [scorer.library.path.name]  # no temp left


def test_a_corrupted_library_is_refused(boosting: ChurnModel, frame: pd.DataFrame,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tl2cgen")
    honest = compiled_batch.import_trees

    def corrupted(estimator: Any) -> Any:
        model = honest(estimator)
        tree = model.get_tree_accessor(0)
        values = tree.get_field("leaf_value").copy()
        target = _busiest_leaf(tree.get_field("data_count"), tree.get_field("cleft") == -1)
        values[target] += 0.05
        tree.set_field("leaf_value", values)
        return model

    monkeypatch.setattr(compiled_batch, "import_trees", corrupted)
    scorer = compile_scorer(boosting, sample=frame, library_dir=tmp_path)
    assert scorer.kind == "trees" and scorer.library is None
    assert "tl2cgen library refused: compiled tl2cgen frame path differs" in scorer.reason
    rows = _messy(frame)
    np.testing.assert_allclose(scorer.score_frame(rows), _expected(boosting, rows),
                               rtol=0, atol=1e-9)


def test_missing_library_falls_back_to_the_compiled_scorer(
        boosting: ChurnModel, frame: pd.DataFrame, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tl2cgen", None)  # `import tl2cgen` raises ImportError
    scorer = compile_scorer(boosting, sample=frame, library_dir=tmp_path)
    assert scorer.kind == "trees"
    assert "treelite/tl2cgen not installed" in scorer.reason and "churnctl[fast]" in scorer.reason
    rows = _messy(frame)
    np.testing.assert_allclose(scorer.score_frame(rows), _expected(boosting, rows),
                               rtol=0, atol=1e-9)
    assert not list(tmp_path.iterdir())


def test_a_cached_library_writable_by_others_is_not_loaded(
        boosting: ChurnModel, frame: pd.DataFrame, tmp_path: Path) -> None:
    pytest.importorskip("tl2cgen")
    first = compile_scorer(boosting, library_dir=tmp_path)
    assert first.kind == "tl2cgen", first.reason
    first.library.path.chmod(0o666)
    again = compile_scorer(boosting, library_dir=tmp_path, compile_library=False)
    assert again.kind == "trees" and "writable by other users" in again.reason
    umask = os.umask(0o002)  # group-writable by default: the library is written 0644 anyway
    try:
        replaced = compile_scorer(boosting, library_dir=tmp_path)  # compiled again, our own
    finally:
        os.umask(umask)
    assert replaced.kind == "tl2cgen" and not replaced.library.cached
    assert replaced.library.path.stat().st_mode & 0o022 == 0
    tmp_path.chmod(0o777)
    try:
        refused = compile_scorer(boosting, library_dir=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert refused.kind == "trees" and "writable by other users" in refused.reason


@pytest.mark.parametrize("library", [False, True])
def test_calibration_of_the_model_applies_to_every_compiled_path(
        boosting: ChurnModel, frame: pd.DataFrame, tmp_path: Path, library: bool) -> None:
    """predict_proba ends in ChurnModel.calibrate; so does every compiled path (Scorer.finish)."""
    if library:
        pytest.importorskip("tl2cgen")
    model = ChurnModel(boosting.estimator, boosting.features, boosting.algorithm,
                       calibration=(0.7, -0.3))
    rows = _messy(frame)
    expected = _expected(model, rows)
    assert np.abs(expected - _expected(boosting, rows)).max() > 0.01  # calibration matters
    scorer = compile_scorer(model, sample=frame, library_dir=tmp_path if library else None)
    assert scorer.kind == ("tl2cgen" if library else "trees"), scorer.reason
    np.testing.assert_allclose(scorer.score_frame(rows), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scorer.score_records(rows.to_dict("records")), expected,
                               rtol=0, atol=1e-9)
    record = rows.iloc[[1]].to_dict("records")
    assert scorer.score_records(record)[0] == pytest.approx(expected[1], abs=1e-12)
