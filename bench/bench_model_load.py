"""Model load time: the skops model file (with churnctl's checks) against the pickle it replaced.

Serving loads a model whenever production (or the MLflow alias) moves, on its reload thread;
batch scoring loads it once per run. Models are the train stage's own pipelines
(churnctl.domain.modeling) fitted on synthetic features; HistGradientBoosting is timed with
early stopping (as trained) and with all 300 trees. Writes bench/results/model_load.json.

Usage: python bench/bench_model_load.py [ROWS]   (default: 20000)
"""

from __future__ import annotations

import pickle
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/serving_demo.py: synthetic data

from _common import write_results

from churnctl.domain.model import MODEL_FILE, ChurnModel, FeatureSpec
from churnctl.domain.model_file import TRUSTED_TYPES
from churnctl.domain.modeling import build_estimator
from churnctl.hashing import file_sha256
from tests.serving_demo import CATEGORIES, NUMERIC, demo_features

REPEAT = 7


def _best_ms(action: Any) -> float:
    return round(min(timeit.repeat(action, number=1, repeat=REPEAT)) * 1000, 2)


def _model(frame: Any, algorithm: str, **params: Any) -> ChurnModel:
    categorical = list(CATEGORIES)
    estimator = build_estimator(algorithm, NUMERIC, categorical, seed=0)
    estimator.set_params(**params)
    specs = [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(v))) for n, v in CATEGORIES.items()]
    model = ChurnModel(estimator, specs, algorithm)
    estimator.fit(model.to_frame(frame), frame["churn_label"])
    return model


def _measure(model: ChurnModel, folder: Path) -> dict[str, Any]:
    import skops.io as sio

    skops_file, pickle_file = folder / MODEL_FILE, folder / "model.pkl"
    model.save(skops_file)
    pickle_file.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    digest = file_sha256(skops_file)
    return {
        "trees": len(getattr(model.estimator[-1], "_predictors", [])),
        "pickle_kb": round(pickle_file.stat().st_size / 1024),
        "skops_kb": round(skops_file.stat().st_size / 1024),
        "pickle_load_ms": _best_ms(lambda: pickle.loads(pickle_file.read_bytes())),
        "skops_io_load_ms": _best_ms(lambda: sio.load(skops_file, trusted=list(TRUSTED_TYPES))),
        "churnctl_load_ms": _best_ms(lambda: ChurnModel.load(skops_file)),
        "churnctl_load_sha256_ms": _best_ms(lambda: ChurnModel.load(skops_file, digest)),
    }


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    frame = demo_features(rows)
    cases = {
        "logistic_regression": {},
        "hist_gradient_boosting": {},
        "hist_gradient_boosting_300_trees": {"model__early_stopping": False},
    }
    figures: dict[str, Any] = {"rows": rows, "repeat": REPEAT}
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in cases.items():
            algorithm = name.removesuffix("_300_trees")
            folder = Path(tmp) / name
            folder.mkdir()
            figures[name] = _measure(_model(frame, algorithm, **params), folder)
    write_results("model_load", figures)


if __name__ == "__main__":
    main()
