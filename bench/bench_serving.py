"""Serving speed: POST /predict (one customer) against GET /live (the framework's floor), and
batch scoring rows per second. Writes bench/results/serving.json.

The server is the real one (uvicorn, one worker, in a child process); the load generator is
`wrk` in another process on 127.0.0.1 (`apt-get install -y wrk`), for DURATION seconds per
endpoint after a short warm-up. Models are trained with the train stage's own pipelines
(churnctl.domain.modeling) on synthetic features.

Targets: /predict >= 50% of the /live rate with p99 < 10 ms; batch >= 1M rows/s of prepared
features; POST /predict/batch of 1,000 customers >= 100,000 rows/s (fast path: orjson parsing,
column-wise checks, frame scoring; compared in the same process with the validated path, the
one every request took before). The original API (a DataFrame and the whole pipeline per call)
did 23 req/s.

Usage: python bench/bench_serving.py [DURATION_SECONDS] [CONNECTIONS]   (default: 20 4)
       python bench/bench_serving.py --batch-endpoint [SECONDS]  (only POST /predict/batch,
       merged into the existing bench/results/serving.json)
"""

from __future__ import annotations

import asyncio
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


def _batch_bodies(frame: Any, rows: int = 1000) -> dict[str, bytes]:
    features = frame.drop(columns=["user_id", "as_of", "churn_label"]).iloc[:rows]
    customers = [{"features": {k: v if isinstance(v, str) else float(v) for k, v in r.items()}}
                 for r in features.to_dict("records")]
    ids = [{"user_id": uid} for uid in frame["user_id"].iloc[:rows].tolist()]
    return {"features": json.dumps({"customers": customers}).encode(),
            "user_ids": json.dumps({"customers": ids}).encode()}


def _in_process(workspace: Workspace, bodies: dict[str, bytes], repeat: int) -> dict[str, Any]:
    """The handler's own time (no HTTP) per 1,000-row batch: fast path against validated path,
    interleaved, best of `repeat`."""
    from churnctl.serving import fast_batch
    from churnctl.serving.app import create_app

    app = create_app(workspace, {"max_batch": 1000})
    app.state.holder.refresh()
    handler = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/predict/batch")
    accept = fast_batch.accept
    out: dict[str, Any] = {}
    for kind, body in bodies.items():
        scope = {"type": "http", "method": "POST", "path": "/predict/batch", "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}

        async def call(body: bytes = body, scope: dict[str, Any] = scope) -> float:
            from starlette.requests import Request

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            began = time.perf_counter()
            answer = await handler(Request(scope, receive))
            assert answer.status_code == 200, answer.body[:300]
            return time.perf_counter() - began

        best = {"fast": 1e9, "validated": 1e9}
        for _ in range(repeat):
            for path in best:
                fast_batch.accept = accept if path == "fast" else (lambda *_: None)
                best[path] = min(best[path], asyncio.run(call()))
        fast_batch.accept = accept
        out[kind] = {f"{path}_ms": round(v * 1000, 2) for path, v in best.items()} | {
            f"{path}_rows_per_second": round(1000 / v) for path, v in best.items()} | {
            "speedup": round(best["validated"] / best["fast"], 2)}
    return out


def bench_batch_endpoint(model: ChurnModel, frame: Any, seconds: float) -> dict[str, Any]:
    """POST /predict/batch with 1,000 customers (by features, by user_id): the real server over
    one keep-alive connection for `seconds` each, and the handler in-process, fast vs
    validated path."""
    import httpx

    bodies = _batch_bodies(frame)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp)).ensure()
        write_features_artifact(workspace, frame)
        register_model(workspace, model)
        figures: dict[str, Any] = {"rows": 1000, "body_bytes": {
            kind: len(body) for kind, body in bodies.items()}}
        with running_server(workspace, {"max_batch": 1000}) as server, httpx.Client(
                base_url=server.url, timeout=30,
                headers={"content-type": "application/json"}) as client:
            figures["scorer"] = client.get("/model").json()["scorer"]  # what the server uses
            for kind, body in bodies.items():
                for _ in range(5):  # warm-up
                    assert client.post("/predict/batch", content=body).status_code == 200
                times = []
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    began = time.perf_counter()
                    answer = client.post("/predict/batch", content=body)
                    times.append(time.perf_counter() - began)
                    assert answer.status_code == 200, answer.text[:300]
                times.sort()
                figures[f"http_{kind}"] = {
                    "requests": len(times), "p50_ms": round(times[len(times) // 2] * 1000, 2),
                    "rows_per_second": round(1000 * len(times) / sum(times)),
                    "best_rows_per_second": round(1000 / times[0])}
        figures["in_process"] = _in_process(workspace, bodies, repeat=15)
    best = figures["in_process"]["features"]["fast_rows_per_second"]
    figures["meets_target"] = bool(figures["http_features"]["rows_per_second"] >= 100_000)
    figures["in_process_meets_target"] = bool(best >= 100_000)
    return figures


def _timed(work: Any) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def batch_endpoint_only(seconds: float) -> None:
    """Only the POST /predict/batch figures, merged into the existing results file."""
    path = Path(__file__).parent / "results" / "serving.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures.pop("machine", None)
    frame = demo_features(20_000, seed=1)
    load_before = os.getloadavg()
    for algorithm in ALGORITHMS:
        model = _train(frame, algorithm)
        figures.setdefault(algorithm, {})["batch_endpoint"] = bench_batch_endpoint(
            model, frame, seconds)
    figures["batch_endpoint_load_average_before_after"] = [
        round(x, 2) for x in (*load_before, *os.getloadavg())]
    write_results("serving", figures)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--batch-endpoint":
        batch_endpoint_only(float(sys.argv[2]) if len(sys.argv) > 2 else 10)
        return
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
            "batch_endpoint": bench_batch_endpoint(model, frame, seconds / 2),
        }
    figures["load_average_before_after"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    figures["original_api_requests_per_second"] = 23
    write_results("serving", figures)


if __name__ == "__main__":
    main()
