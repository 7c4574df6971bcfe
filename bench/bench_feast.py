"""features.feast against features.pandas on the default data (2,000 users x 120 days).

In one temp workspace: `churnctl run` with features.pandas, then with features.feast (SQLite
online store), then with Redis when redis-server is installed. Reports the features stage's
seconds for each (the Feast figure includes Feast's import, the point-in-time joins and the
materialization after commit), the point-in-time join and a full materialization timed alone,
and the online look-up latency of one user (the call `/predict {"user_id"}` makes) against the
v1 Parquet snapshot's look-up. Writes bench/results/feast.json.

Usage: python bench/bench_feast.py
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from _common import CHURNCTL, write_results

LOOKUPS = 2_000
os.environ["FEAST_USAGE"] = "False"


def _run(root: Path, *sets: str) -> dict[str, Any]:
    args = [*CHURNCTL, "run", "--json", "--workspace", str(root), "--profile", "v1"]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    stages = {row["name"]: row for row in json.loads(done.stdout)["stages"]}
    return stages["features"]


def _latency(get: Any, users: list[int]) -> dict[str, float]:
    for user in users[:50]:
        get(user)  # warm-up (connections, caches)
    samples = []
    for user in users:
        began = time.perf_counter()
        get(user)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
            "mean_ms": round(statistics.fmean(samples), 3), "lookups": len(samples)}


def _online(root: Path, users: list[int]) -> dict[str, Any]:
    from churnctl.feast_store.online import OnlineFeatures
    from churnctl.runs import latest_artifact
    from churnctl.workspace import Workspace

    ws = Workspace(root)
    artifact = latest_artifact(ws, "features")
    schema = artifact.meta("feature_schema")
    online = OnlineFeatures(ws, artifact.meta("feature_store"), schema,
                            artifact.table("latest"), "user_id")
    names = tuple(schema["numeric"] + schema["categorical"])
    return _latency(lambda u: online.get(u, names), users)


def _offline(root: Path) -> dict[str, Any]:
    import pandas as pd

    from churnctl.backends.features_feast import FeastFeaturesOptions, repo_spec
    from churnctl.feast_store import store as S
    from churnctl.runs import latest_artifact
    from churnctl.workspace import Workspace

    artifact = latest_artifact(Workspace(root), "features")
    train = pd.read_parquet(artifact.table("train"))
    spec = repo_spec(FeastFeaturesOptions(), artifact.meta("feature_schema")["numeric"])
    began = time.perf_counter()
    store = S.open_store(root / "feature_repo")
    opened = time.perf_counter() - began
    began = time.perf_counter()
    S.historical(store, spec, train[["user_id", "as_of", "churn_label"]])
    join = time.perf_counter() - began
    meta = artifact.meta("feature_store")
    began = time.perf_counter()
    S.materialize(store, S.end_of(pd.Timestamp(meta["last_day"])),
                  pd.Timestamp(meta["first_day"]).to_pydatetime(), incremental=False)
    return {"open_store_s": round(opened, 3), "point_in_time_join_s": round(join, 3),
            "join_rows": len(train), "materialize_full_s": round(time.perf_counter() - began, 3),
            "offline_rows": int(pd.read_parquet(artifact.table("user_features")).shape[0])}


def main() -> None:
    import pandas as pd

    from churnctl.serving.lookup import FeatureTable

    figures: dict[str, Any] = {"data": "built-in default: 2,000 users x 120 days",
                               "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-feast-") as tmp:
        root = Path(tmp)
        pandas_row = _run(root)
        figures["features_stage_s"] = {"pandas": round(pandas_row["seconds"], 3)}
        from churnctl.runs import latest_artifact
        from churnctl.workspace import Workspace

        parquet = FeatureTable.read(latest_artifact(Workspace(root), "features").table("latest"))
        feast_row = _run(root, "features.backend=feast")
        figures["features_stage_s"]["feast_sqlite"] = round(feast_row["seconds"], 3)
        latest = pd.read_parquet(latest_artifact(Workspace(root), "features").table("latest"))
        ids = [int(u) for u in latest["user_id"]]
        users = [random.Random(7).choice(ids) for _ in range(LOOKUPS)]
        names = tuple(c for c in latest.columns if c not in ("user_id", "as_of"))
        figures["lookup_ms"] = {"v1_parquet_snapshot": _latency(
            lambda u: parquet.get(u, names), users)}
        figures["lookup_ms"]["feast_sqlite"] = _online(root, users)
        figures["feast_offline"] = _offline(root)
        redis = shutil.which("redis-server")
        if redis:
            from tests.redis_service import free_port

            port = free_port()
            server = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                row = _run(root, "features.backend=feast", "features.online_store=redis",
                           f"features.redis_connection=127.0.0.1:{port}")
                figures["features_stage_s"]["feast_redis"] = round(row["seconds"], 3)
                figures["lookup_ms"]["feast_redis"] = _online(root, users)
            finally:
                server.terminate()
                server.wait(timeout=10)
    figures["load_average_at_end"] = os.getloadavg()[0]  # a shared machine: read with it
    write_results("feast", figures)


if __name__ == "__main__":
    main()
