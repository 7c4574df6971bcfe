"""Batch scoring of the default gradient-boosting model: sklearn against the compiled paths.

Trains the default gradient-boosting model with `churnctl run` in a temp workspace (model
selection held to it; or reads the production model of WORKSPACE), takes
its feature rows (train, test and latest snapshots, repeated up to ROWS) and times, on 1 and
2 threads, interleaved so that a busy machine slows every path alike:

- `sklearn_pipeline`: `ChurnModel.predict_proba` on the frame (ColumnTransformer + HGB);
- `sklearn_estimator`: the HistGradientBoostingClassifier's `predict_proba` on the dense matrix;
- `compiled_python_frame`: the compiled scorer without a library (churnctl's layout, then
  sklearn's predict); `compiled_python_records`: the generated tree code, one record per call;
- `tl2cgen_frame`: the batch scorer (layout + tl2cgen library), `tl2cgen_matrix` the library
  alone on the dense matrix, `treelite_gtil_matrix` treelite's interpreter on it;

plus the verification at load (1,000 synthetic rows and edge cases, then with 1,000 real rows
as batch scoring does) and the library's compile and cached-load times. Writes
bench/results/batch.json.

Usage: python bench/bench_batch.py [ROWS] [WORKSPACE]   (default: 65536 rows, a new workspace)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from _common import CHURNCTL, write_results

REPEAT = 5
RECORD_ROWS = 3_000  # the one-record-per-call path is timed on this many rows


def _workspace(given: str | None, scratch: Path) -> Path:
    if given:
        return Path(given)
    # The default pipeline, its model selection held to gradient boosting (the model measured).
    subprocess.run([*CHURNCTL, "run", "--set", "train.algorithms=[hist_gradient_boosting]"],
                   cwd=scratch, check=True, capture_output=True)
    return scratch


def _rows(root: Path, rows: int) -> Any:
    import pandas as pd

    folder = next((root / ".churnctl" / "artifacts" / "features").glob("*/latest.parquet")).parent
    frames = [pd.read_parquet(folder / f"{name}.parquet") for name in ("train", "test", "latest")
              if (folder / f"{name}.parquet").exists()]
    frame = pd.concat(frames, ignore_index=True)
    repeats = -(-rows // len(frame))
    return pd.concat([frame] * repeats, ignore_index=True).head(rows), len(frame)


def _timed(candidates: dict[str, Callable[[], Any]], rows: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(REPEAT):
        for name, run in candidates.items():  # interleaved: load changes hit every path
            began = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - began)
    return {name: {"rows_per_s_best": round(rows / min(values)),
                   "rows_per_s_median": round(rows / statistics.median(values))}
            for name, values in samples.items()}


def main() -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.serving.compiled_batch import load_library
    from churnctl.serving.scoring import compile_scorer
    from churnctl.workspace import Workspace

    warnings.simplefilter("ignore")
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 65_536
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = _workspace(sys.argv[2] if len(sys.argv) > 2 else None, Path(tmp))
        registry = ModelRegistry(Workspace(root).registry)
        model = registry.load_model(registry.production().version)
        frame, distinct = _rows(root, rows)
        cache = Path(tmp) / "compiled"
        python = compile_scorer(model)  # as `churnctl serve` loads it
        batch = compile_scorer(model, sample=frame, library_dir=cache)  # as `churnctl predict`
        cached = compile_scorer(model, sample=frame, library_dir=cache, compile_library=False)
        assert python.kind == "trees", python.reason
        assert batch.kind == cached.kind == "tl2cgen", (batch.reason, cached.reason)
        estimator = model.estimator[-1]
        matrix = python.layout.columns(frame).dense(0, len(frame))
        records = frame.head(RECORD_ROWS)[model.feature_names].to_dict("records")
        expected = model.predict_proba(frame)
        worst = float(np.abs(batch.score_frame(frame) - expected).max())
        import treelite

        gtil_model = treelite.sklearn.import_model(estimator)
        figures: dict[str, Any] = {
            "model": {"algorithm": model.algorithm, "trees": len(estimator._predictors),
                      "features": len(model.features),
                      "calibrated": getattr(model, "calibration", None) is not None},
            "rows": len(frame), "distinct_rows": distinct, "repeat": REPEAT,
            "max_abs_difference_tl2cgen_vs_predict_proba": worst,
            "load": {
                "verify_ms_serve": round(python.verify_seconds * 1000, 1),
                "verified_rows_serve": python.verified_rows,
                "verify_ms_batch": round(batch.verify_seconds * 1000, 1),
                "verified_rows_batch": batch.verified_rows,
                "tl2cgen_compile_s": round(batch.library.seconds, 2),
                "tl2cgen_cached_load_ms": round(cached.library.seconds * 1000, 1),
            },
            "threads": {},
        }
        for threads in (1, 2):
            library, _ = load_library(estimator, cache, compile_missing=False, threads=threads)
            assert library is not None
            batch.library = library
            with threadpool_limits(limits=threads):
                timings = _timed({
                    "sklearn_pipeline": lambda: model.predict_proba(frame),
                    "sklearn_estimator": lambda: estimator.predict_proba(matrix),
                    "compiled_python_frame": lambda: python.score_frame(frame),
                    "tl2cgen_frame": lambda: batch.score_frame(frame),
                    "tl2cgen_matrix": lambda: library.score_matrix(matrix),  # noqa: B023
                    "treelite_gtil_matrix": lambda: treelite.gtil.predict(
                        gtil_model, matrix, nthread=threads),  # noqa: B023
                }, len(frame))
                timings |= _timed({"compiled_python_records": lambda: [
                    python.score_records([r]) for r in records]}, len(records))
            best = {name: t["rows_per_s_best"] for name, t in timings.items()}
            timings["ratio_tl2cgen_frame_vs_sklearn_pipeline"] = round(
                best["tl2cgen_frame"] / best["sklearn_pipeline"], 2)
            timings["ratio_tl2cgen_frame_vs_sklearn_estimator"] = round(
                best["tl2cgen_frame"] / best["sklearn_estimator"], 2)
            figures["threads"][str(threads)] = timings
    figures["load_average"] = {"before": [round(v, 2) for v in load_before],
                               "after": [round(v, 2) for v in os.getloadavg()]}
    write_results("batch", figures)


if __name__ == "__main__":
    main()
