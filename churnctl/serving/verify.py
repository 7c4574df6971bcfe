"""The check a compiled scorer passes before it serves: the pipeline's own answers, every path.

Rows: `VERIFY_ROWS` synthetic rows over the scaler ranges, small counts, zeros and every known
category (all of them scoreable by any pipeline), then edge cases (an unseen category, a missing
category, missing numbers), and when the caller has them real feature rows (batch: the latest
snapshot). Each is scored through the paths that serve, compared with `model.predict_proba`:

- "single-row": `score_records([record])`, one call per row, as `/predict` does; for gradient
  boosting this is the generated tree code;
- "batched-records": `score_records` on batches of `RECORD_BATCH` (`/predict/batch`; generated
  code too), and "records" on all rows at once (the sklearn predict above 16 rows);
- "frame": `score_frame`, as batch scoring does (with a compiled tree library when attached).

A difference above `TOLERANCE` on a row without missing numbers refuses the scorer; one only
on rows with missing numbers sends such rows to the pipeline (`Scorer.nan_compiled`). sklearn
runs single-threaded here: on a busy 2-core machine its per-tree OpenMP barriers made 1,000
rows take seconds instead of ~60 ms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from churnctl.domain.model import ChurnModel

TOLERANCE = 1e-9  # max difference from the pipeline's probability on verification rows
VERIFY_ROWS = 1_000  # synthetic rows checked at load; as many real rows again when given
RECORD_BATCH = 16  # the batched-records path: batches as small as /predict/batch gets
# A row with a missing category always goes to the pipeline (10-40 ms per call, once per path):
# one proves the routing. Real rows with a missing category are left out for the same reason.
MISSING_CATEGORY_ROWS = 1
PATHS = ("single-row", "batched-records", "records", "frame")


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # shipped with scikit-learn; without it, default threads
        yield
        return
    with threadpool_limits(limits=1):
        yield


def synthetic_rows(model: ChurnModel, layout: Any, rows: int, seed: int = 7) -> pd.DataFrame:
    """`rows` rows any pipeline can score, then rows//4 with an unseen category, rows//4 with
    missing numbers and one with a missing category (the pipeline scores it: routing)."""
    rng = np.random.default_rng(seed)
    edge = rows // 4
    unseen = np.arange(rows, rows + edge)
    holes = np.arange(rows + edge, rows + 2 * edge)
    absent = np.arange(rows + 2 * edge, rows + 2 * edge + min(edge, MISSING_CATEGORY_ROWS))
    total = rows + 2 * edge + len(absent)
    data: dict[str, Any] = {}
    numeric = [spec for spec in model.features if spec.kind == "numeric"]
    categorical = [spec for spec in model.features if spec.kind != "numeric"]
    for position, spec in enumerate(numeric):
        centre, spread = layout.numeric_range(spec.name)
        values = rng.normal(centre, spread * 2.0, total)
        values[::5] = rng.integers(0, 40, len(values[::5]))
        values[::7] = 0.0
        values[holes[(np.arange(len(holes)) + position) % 3 == 0]] = np.nan
        data[spec.name] = values
    for position, spec in enumerate(categorical):
        known = layout.known_categories(spec.name) or list(spec.categories) or ["a"]
        values = rng.choice(np.array(known, dtype=object), total)
        values[unseen[np.arange(len(unseen)) % len(categorical) == position]] = "__unseen__"
        values[absent[np.arange(len(absent)) % len(categorical) == position]] = None
        data[spec.name] = values
    return pd.DataFrame(data)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as /predict gets them: plain values, None for a missing category."""
    records = frame.to_dict("records")
    if any(not (pd.api.types.is_float_dtype(t) or t == np.dtype(object)) for t in frame.dtypes):
        records = [{k: (None if v is pd.NA else v) for k, v in r.items()} for r in records]
    return records


class Verification:
    """Rows, and the pipeline's probabilities for them, checked against each scoring path."""

    def __init__(self, model: ChurnModel, scorer: Any, rows: int = VERIFY_ROWS,
                 sample: pd.DataFrame | None = None) -> None:
        self.model = model
        self.layout = scorer.layout
        self.numeric = [spec.name for spec in model.features if spec.kind == "numeric"]
        self.skipped = ""  # why the real rows were left out, if they were
        self.parts = [(*self._reference(scorer, synthetic_rows(model, self.layout, rows)), True)]
        names = model.feature_names
        if sample is not None and len(sample) and all(n in sample.columns for n in names):
            real = sample[names]
            categorical = [spec.name for spec in model.features if spec.kind != "numeric"]
            if categorical:
                real = real[real[categorical].notna().all(axis=1)]
            if len(real) > rows:
                real = real.sample(rows, random_state=0)
            try:
                self.parts.append((*self._reference(scorer, real.reset_index(drop=True)), False))
            except Exception as exc:  # unusable rows: scoring them reports the error itself
                self.skipped = f"real rows not verified: {type(exc).__name__}: {exc}"

    @property
    def rows(self) -> int:
        return sum(len(part[0]) for part in self.parts)

    def _reference(self, scorer: Any, frame: pd.DataFrame
                   ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The rows the pipeline scores, its probabilities, and which rows miss a number.

        A pipeline that rejects unseen or missing categories (handle_unknown="error", no
        imputer) is checked on known ones; one that rejects missing numbers keeps its error for
        them (`nan_compiled`).
        """
        holes = frame[self.numeric].isna().any(axis=1).to_numpy() if self.numeric else (
            np.zeros(len(frame), dtype=bool))
        known = np.ones(len(frame), dtype=bool)
        for block in self.layout.categoricals:
            column = frame[block.source]
            known &= column.isin(block.categories).to_numpy()
        error: ValueError | None = None
        everything = np.ones(len(frame), dtype=bool)
        for keep, without_holes in ((everything, False), (known, False), (~holes, True),
                                    (known & ~holes, True)):
            rows = frame if keep.all() else frame[keep].reset_index(drop=True)
            try:
                expected = self.model.predict_proba(rows)
            except ValueError as exc:
                error = exc
                continue
            if without_holes and holes.any():
                scorer.nan_compiled = False
            return rows, expected, holes[keep]
        assert error is not None
        raise error

    def _paths(self, scorer: Any, frame: pd.DataFrame) -> dict[str, Callable[[], np.ndarray]]:
        records = _records(frame)

        def batched() -> np.ndarray:
            parts = [scorer.score_records(records[i:i + RECORD_BATCH])
                     for i in range(0, len(records), RECORD_BATCH)]
            return np.concatenate(parts) if parts else np.empty(0)

        return {
            "single-row": lambda: np.array([scorer.score_records([r])[0] for r in records]),
            "batched-records": batched,
            "records": lambda: scorer.score_records(records),
            "frame": lambda: scorer.score_frame(frame),
        }

    def run(self, scorer: Any, paths: tuple[str, ...] = PATHS) -> str:
        """"" when every path matches the pipeline; otherwise which path differs and by how much."""
        for frame, expected, holes, synthetic in list(self.parts):
            if not len(frame):
                continue
            runners = self._paths(scorer, frame)
            for name in paths:
                try:
                    got = runners[name]()
                except Exception as exc:
                    if synthetic:
                        raise
                    # e.g. text in a numeric column: left out here, scoring reports it.
                    self.skipped = f"real rows not verified: {type(exc).__name__}: {exc}"
                    self.parts = [part for part in self.parts if part[3]]
                    break
                off = ~(np.abs(got - expected) <= TOLERANCE)  # NaN counts as a difference
                if (off & ~holes).any():
                    gaps = np.abs(got - expected)[off]
                    worst = "NaN" if np.isnan(gaps).any() else f"{gaps.max():.3g}"
                    label = f"{scorer.kind} {name}" if name == "frame" else name
                    return (f"compiled {label} path differs from the pipeline by {worst} "
                            f"on {int(off.sum())} of {len(frame)} rows")
                if off.any():  # only where numbers are missing: the pipeline imputes those
                    scorer.nan_compiled = False
        return ""
