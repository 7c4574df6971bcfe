"""Fast scoring: a fitted sklearn pipeline compiled into lookup tables and numpy arrays.

The original API rebuilt a DataFrame and ran the whole pipeline per request (23 req/s): a
ColumnTransformer costs milliseconds per call and HistGradientBoosting ~1 ms for one row, as it
dispatches OpenMP work per tree. Here the fitted steps are read once (scaler offsets, encoder
look-up tables, linear coefficients, trees as generated code) and scoring a row is a few dict
look-ups and arithmetic; a frame is scored column by column with numpy, and for batch scoring
of gradient boosting by a compiled tree library (compiled_batch.py).

The compiler reads private sklearn attributes, so it runs only on the scikit-learn releases in
`SKLEARN_SUPPORTED`, and every compiled model is checked when it loads against the pipeline's
own `predict_proba` through each path that serves (verify.py). Anything that cannot be
compiled or differs falls back to the pipeline: never a wrong answer for speed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.model import ChurnModel
from churnctl.serving.heads import LinearHead, build_head, expit
from churnctl.serving.layout import CompileError, Layout, UnknownCategory, compile_layout
from churnctl.serving.trees import TreesHead
from churnctl.serving.verify import TOLERANCE, VERIFY_ROWS, Verification, single_threaded

__all__ = ["SKLEARN_SUPPORTED", "TOLERANCE", "VERIFY_ROWS", "CompileError", "Scorer",
           "UnknownCategory", "compile_scorer", "sklearn_version_problem"]

# The scikit-learn releases whose private attributes (ColumnTransformer indices, encoder
# widths, HistGradientBoosting trees and its categorical re-encoding) the compiler reads, as
# tested: with 1.4.2, 1.5.2, 1.6.1, 1.7.2, 1.8.0 and 1.9.1 both train-stage pipelines compile,
# tl2cgen included, and verify. Outside the range the pipeline scores.
SKLEARN_SUPPORTED = ">=1.4,<1.10"
CHUNK_ROWS = 65_536  # rows per dense block in frame scoring: bounds memory for big batches


def sklearn_version_problem(version: str) -> str:
    """Why the compiler refuses scikit-learn `version`, or "" when it is supported."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"scikit-learn version {version!r} is not a version number"
    # prereleases=True admits 1.9.0rc1; PEP 440 keeps <1.10 from admitting 1.10.0rc1.
    if not SpecifierSet(SKLEARN_SUPPORTED).contains(parsed, prereleases=True):
        return (f"scikit-learn {version} is outside the versions the compiler supports "
                f"({SKLEARN_SUPPORTED})")
    return ""


class Scorer:
    """Churn probabilities for records (one per customer) or a frame of feature columns.

    `kind` says which path is used: "linear", "trees" or "numpy" (compiled), "tl2cgen" (trees
    compiled to a shared library for frames, generated code for records), or "pipeline" (the
    model's own pipeline). `reason` says why a faster path was not taken. Rows with a missing
    category, or a missing number where the compiled path did not match the pipeline on missing
    numbers, are scored by the pipeline, so imputation stays exactly the pipeline's.
    """

    def __init__(self, model: ChurnModel, layout: Layout | None = None, head: Any = None,
                 reason: str = "") -> None:
        self.model = model
        self.layout = layout
        self.head = head
        self.reason = reason
        self.library: Any = None  # a compiled tree library for frames (compiled_batch.py)
        self.nan_compiled = True  # whether missing numbers may take the compiled path
        self.verified_rows = 0
        self.verify_seconds = 0.0
        self._numeric = [block.source for block in layout.numerics] if layout else []
        self._linear = (layout.linear(head.weights, head.bias)
                        if layout is not None and isinstance(head, LinearHead) else None)

    @property
    def kind(self) -> str:
        if self.head is None:
            return "pipeline"
        return self.library.kind if self.library is not None else self.head.kind

    def finish(self, probabilities: np.ndarray) -> np.ndarray:
        """Every compiled probability passes here last, so it gets what `predict_proba` adds
        after the estimator: the model's calibration, when the model has one."""
        calibrate = getattr(self.model, "calibrate", None)
        if calibrate is None:
            return probabilities
        return np.asarray(calibrate(probabilities), dtype=np.float64)

    def _score_linear(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.empty(len(records))
        fast = np.ones(len(records), dtype=bool)
        check_nan = not self.nan_compiled
        for i, record in enumerate(records):
            raw = self._linear(record)  # type: ignore[misc]
            if raw is None or raw != raw or (
                    check_nan and any(record[name] != record[name] for name in self._numeric)):
                fast[i] = False
            elif raw >= 0:  # the logistic function, without overflow for large |raw|
                out[i] = 1.0 / (1.0 + math.exp(-raw))
            else:
                out[i] = math.exp(raw) / (1.0 + math.exp(raw))
        if fast.all():
            return self.finish(out)
        out[fast] = self.finish(out[fast])
        slow = np.flatnonzero(~fast)
        out[slow] = self.model.predict_proba([records[i] for i in slow])
        return out

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not records:
            return np.empty(0)
        if self.layout is None:
            return self.model.predict_proba(list(records))
        if self._linear is not None:
            return self._score_linear(records)
        rows, fast, slow = [], [], []
        for i, record in enumerate(records):
            row = self.layout.row(record)
            if row is None or (not self.nan_compiled and np.isnan(row).any()):
                slow.append(i)
            else:
                rows.append(row)
                fast.append(i)
        if not slow:
            matrix = np.vstack(rows) if len(rows) > 1 else rows[0][None, :]
            return self.finish(self.head.score_matrix(matrix))
        out = np.empty(len(records))
        out[slow] = self.model.predict_proba([records[i] for i in slow])
        if rows:
            out[fast] = self.finish(self.head.score_matrix(np.vstack(rows)))
        return out

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities for every row of `frame` (feature columns; others are ignored)."""
        missing = [name for name in self.model.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"missing feature columns: {', '.join(missing)}")
        if self.layout is None:
            return self.model.predict_proba(frame)
        columns = self.layout.columns(frame)
        if isinstance(self.head, LinearHead):
            out = expit(columns.dot(self.head.weights) + self.head.bias)
        else:
            engine = self.library if self.library is not None else self.head
            out = np.empty(len(frame))
            for start in range(0, len(frame), CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, len(frame))
                out[start:stop] = engine.score_matrix(columns.dense(start, stop))
        out = self.finish(out)
        slow = columns.missing
        if not self.nan_compiled:
            slow = slow | columns.nan_rows()
        if slow.any():
            out[slow] = self.model.predict_proba(frame[slow])
        return out


def _installed_sklearn() -> str:
    import sklearn

    return str(sklearn.__version__)


def _note(scorer: Scorer, reason: str) -> None:
    scorer.reason = f"{scorer.reason}; {reason}" if scorer.reason else reason


def _attach_library(scorer: Scorer, check: Verification, cache_dir: Path,
                    compile_missing: bool) -> None:
    """Score frames with the compiled tree library if it loads and matches the pipeline."""
    from churnctl.serving.compiled_batch import load_library

    library, why = load_library(scorer.head.estimator, cache_dir, compile_missing=compile_missing)
    if library is None:
        _note(scorer, f"batch trees by sklearn: {why}")
        return
    scorer.library = library
    started = time.perf_counter()
    with warnings.catch_warnings(), single_threaded():
        warnings.simplefilter("ignore")
        problem = check.run(scorer, paths=("frame",))
    scorer.verify_seconds += time.perf_counter() - started
    if problem:
        scorer.library = None
        _note(scorer, f"{library.kind} library refused: {problem}")


def compile_scorer(model: ChurnModel, *, sample: pd.DataFrame | None = None,
                   rows: int = VERIFY_ROWS, library_dir: Path | None = None,
                   compile_library: bool = True) -> Scorer:
    """The fastest scorer that gives the pipeline's own answers for `model`.

    It is verified against `model.predict_proba` on `rows` synthetic rows (plus edge cases)
    and up to `rows` rows of `sample` (real feature rows, when the caller has them). With
    `library_dir`, gradient boosting also gets a compiled tree library for frames (batch),
    cached there; `compile_library=False` uses one only if it is already cached.
    """
    problem = sklearn_version_problem(_installed_sklearn())
    if problem:
        return Scorer(model, reason=problem)
    if (type(model).to_frame is not ChurnModel.to_frame
            or type(model).predict_proba is not ChurnModel.predict_proba):
        return Scorer(model, reason=f"{type(model).__name__} prepares its input itself")
    steps = getattr(model.estimator, "steps", None)
    if not steps or len(steps) != 2:
        return Scorer(model, reason="estimator is not a two-step Pipeline (preprocess, model)")
    try:
        scorer = Scorer(model, compile_layout(steps[0][1], model.features),
                        build_head(steps[1][1]))
        started = time.perf_counter()
        with warnings.catch_warnings(), single_threaded():
            warnings.simplefilter("ignore")  # e.g. unseen-category warnings from the pipeline
            check = Verification(model, scorer, rows, sample)
            problem = check.run(scorer)
        scorer.verify_seconds = time.perf_counter() - started
        scorer.verified_rows = check.rows
        scorer.reason = check.skipped
    except CompileError as exc:
        return Scorer(model, reason=str(exc))
    except Exception as exc:  # any surprise while compiling: the pipeline is always right
        return Scorer(model, reason=f"compiling failed: {type(exc).__name__}: {exc}")
    if problem:
        refused = Scorer(model, reason=problem)
        refused.verify_seconds, refused.verified_rows = scorer.verify_seconds, check.rows
        return refused
    if library_dir is not None and isinstance(scorer.head, TreesHead):
        try:
            _attach_library(scorer, check, library_dir, compile_library)
        except Exception as exc:  # the sklearn batch path stays
            scorer.library = None
            _note(scorer, f"batch trees by sklearn: {type(exc).__name__}: {exc}")
    return scorer
