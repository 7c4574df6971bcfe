"""Serving speed: POST /predict (one customer) against GET /live (the framework's floor), and
batch scoring rows per second. Writes bench/results/serving.json.

The server is the real one (uvicorn, one worker, in a child process); the load generator is
`wrk` in another process on 127.0.0.1 (`apt-get install -y wrk`), for DURATION seconds per
endpoint after a short warm-up. Models are trained with the train stage's own pipelines
(churnctl.domain.modeling) on synthetic features.

Targets: /predict >= 50% of the /live rate with p99 < 10 ms; batch >= 1M rows/s of prepared
features. The original API (a DataFrame and the whole pipeline per call) did 23 req/s.

Usage: python bench/bench_serving.py [DURATION_SECONDS] [CONNECTIONS]   (default: 20 4)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
# The demo workspace helpers are test scaffolding in tests/serving_demo.py, outside the package.
sys.path.insert(0, str(Path(__file__).parent.parent))

from _common import write_results

from churnctl.domain.model import ChurnModel, FeatureSpec
from churnctl.domain.modeling import build_estimator
from churnctl.serving.batch import score_latest
from churnctl.serving.scoring import compile_scorer
from churnctl.workspace import Workspace
from tests.serving_demo import (
    CATEGORIES,
    NUMERIC,
    demo_features,
    register_model,
    running_server,
    write_features_artifact,
)

ALGORITHMS = ("logistic_regression", "hist_gradient_boosting")
REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _train(frame: Any, algorithm: str) -> ChurnModel:
    categorical = list(CATEGORIES)
    specs = [FeatureSpec(n, "numeric") for n in NUMERIC] + [
        FeatureSpec(n, "categorical", tuple(sorted(frame[n].unique()))) for n in categorical]
    model = ChurnModel(build_estimator(algorithm, NUMERIC, categorical, 0), specs, algorithm)
    model.estimator.fit(model.to_frame(frame), frame["churn_label"])
    return model


def _wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    raw = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    seconds_run = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "seconds": round(seconds_run, 2),
            "requests_per_second": round(raw["requests"] / seconds_run, 1),
            "p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            "non_2xx": raw["non_2xx"], "socket_errors": raw["socket_errors"]}


def _scripts(folder: Path, features: dict[str, Any]) -> dict[str, Path]:
    body = json.dumps({"features": features})
    scripts = {
        "live": REPORT,
        "predict": (f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = {json.dumps(body)}\n{REPORT}"),
    }
    paths = {}
    for name, text in scripts.items():
        paths[name] = folder / f"{name}.lua"
        paths[name].write_text(text)
    return paths


def bench_server(model: ChurnModel, frame: Any, seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp)).ensure()
        write_features_artifact(workspace, frame)
        register_model(workspace, model)
        record = frame.drop(columns=["user_id", "as_of", "churn_label"]).iloc[7].to_dict()
        features = {k: v if isinstance(v, str) else float(v) for k, v in record.items()}
        scripts = _scripts(Path(tmp), features)
        figures: dict[str, Any] = {}
        with running_server(workspace) as server:
            for name, path in (("live", "/live"), ("predict", "/predict")):
                _wrk(server.url + path, scripts[name], 3, connections)  # warm-up
                figures[name] = _wrk(server.url + path, scripts[name], seconds, connections)
    live, predict = figures["live"], figures["predict"]
    ratio = predict["requests_per_second"] / live["requests_per_second"]
    figures["predict_over_live"] = round(ratio, 3)
    figures["meets_target"] = bool(ratio >= 0.5 and predict["p99_ms"] < 10
                                   and predict["non_2xx"] == 0)
    return figures


def bench_batch(model: ChurnModel, frame: Any, rows: int) -> dict[str, Any]:
    """Rows per second of scoring an in-memory frame (best of 3), the pipeline's own rate."""
    scorer = compile_scorer(model)
    big = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    best = min(_timed(lambda: scorer.score_frame(big)) for _ in range(3))
    sample = big.iloc[:20_000]
    pipeline = _timed(lambda: model.predict_proba(sample))
    single = frame.iloc[[3]]
    one = min(_timed(lambda: model.predict_proba(single)) for _ in range(20))
    return {"scorer": scorer.kind, "rows": rows, "rows_per_second": round(rows / best),
            "pipeline_rows_per_second": round(len(sample) / pipeline),
            "pipeline_single_row_ms": round(one * 1000, 2),
            "meets_target": rows / best >= 1_000_000}


def bench_end_to_end(model: ChurnModel, users: int) -> dict[str, Any]:
    """`churnctl predict` as a whole: read latest.parquet, score, write Parquet, CSV, top-K."""
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp)).ensure()
        write_features_artifact(workspace, demo_features(users, seed=9))
        register_model(workspace, model)
        result = score_latest(workspace, top_k=100)
    return {"users": users, "scorer": result.scorer,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
            "scoring_rows_per_second": round(result.rows_per_second),
            "end_to_end_rows_per_second": round(users / result.seconds["total"])}


def _timed(work: Any) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    if shutil.which("wrk") is None:
        sys.exit("bench_serving needs wrk: apt-get install -y wrk")
    load_before = os.getloadavg()
    frame = demo_features(20_000, seed=1)
    figures: dict[str, Any] = {"load": {"tool": "wrk", "threads": 1, "connections": connections,
                                        "seconds_per_endpoint": seconds, "host": "127.0.0.1"}}
    for algorithm in ALGORITHMS:
        model = _train(frame, algorithm)
        boosted = algorithm == "hist_gradient_boosting"
        figures[algorithm] = {
            "trees": int(model.estimator[-1].n_iter_) if boosted else None,
            "server": bench_server(model, frame, seconds, connections),
            "batch": bench_batch(model, frame, 1_000_000),
            "predict_command": bench_end_to_end(model, 200_000),
        }
    figures["load_average_before_after"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    figures["original_api_requests_per_second"] = 23
    write_results("serving", figures)


if __name__ == "__main__":
    main()
