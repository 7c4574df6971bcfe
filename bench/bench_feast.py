"""features.feast against features.pandas, and serving from the Feast online store against the
v1 Parquet snapshot, in one run. Writes bench/results/feast.json.

Default data (2,000 users x 120 days), in one temp workspace:
- the features stage's seconds: pandas, Feast with SQLite (first run, then a second run with
  the same data: apply and materialize skipped), Feast with Redis when redis-server exists;
- the online look-up of one user (the call `/predict {"user_id"}` makes, in-process, p50/p99;
  SQLite and Redis from the per-worker cache that users asked about again fill, and
  `*_uncached`)
  for the v1 Parquet snapshot, Feast SQLite and Feast Redis (target p99 <= 5 ms) by the direct
  read serving uses and by Feast's `online_read` per view (`*_online_read`), with a Redis
  PING as the floor this machine puts under any Redis round trip, and the /predict handler's
  own time around that look-up;
- `/predict {"user_id"}` against `/live` on the real server (uvicorn, one worker) with `wrk`
  (random users), alternated three times per source: req/s, p99, the ratio (target >= 0.5);
- the point-in-time join (train + test + latest entity rows, as the stage runs it) and a full
  materialization timed alone.
At 20,000 users (`--users`): the features stage with pandas and with Feast (SQLite) and the
point-in-time join alone (target <= 60 s).

Usage: python bench/bench_feast.py [--users 20000] [--seconds 5] [--skip-large]
(--skip-large keeps the last large-data figures of bench/results/feast.json)
"""

from __future__ import annotations

import argparse
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

from _common import CHURNCTL, RESULTS, cpu_seconds, write_results

LOOKUPS = 2_000
WRK_USERS = 200
os.environ["FEAST_USAGE"] = "False"
os.environ.setdefault("DO_NOT_TRACK", "1")


def _run(root: Path, *sets: str, only: tuple[str, ...] = ()) -> dict[str, Any]:
    args = [*CHURNCTL, "run", "--json", "--workspace", str(root), "--profile", "v1"]
    for stage in only:
        args += ["--only", stage]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"churnctl run failed: {done.stderr[-2000:]}")
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


def _source(root: Path, fast: bool = True, cache_users: int | None = None) -> Any:
    """The look-up source serving opens for the newest features artifact (as the API does;
    `fast=False`: Feast's online_read per view, what served before the direct read)."""
    from churnctl.serving.lookup import latest_features_path, open_feature_source
    from churnctl.workspace import Workspace

    ws = Workspace(root)
    return open_feature_source(ws, latest_features_path(ws), "user_id", fast=fast,
                               cache_users=cache_users)


def _lookup(root: Path, users: list[int], names: tuple[str, ...], fast: bool = True,
            cache_users: int | None = None) -> dict[str, Any]:
    source = _source(root, fast, cache_users)
    figures = _latency(lambda u: source.get(u, names), users)
    reader = getattr(source, "reader", None)
    return figures if reader is None else {**figures, "reader": reader}


REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _wrk(url: str, script: Path, seconds: int) -> dict[str, Any]:
    args = ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    raw = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return {"requests_per_second": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
            "non_2xx": raw["non_2xx"], "socket_errors": raw["socket_errors"]}


def _http(root: Path, users: list[int], seconds: int, rounds: int = 3,
          options: dict[str, Any] | None = None) -> dict[str, Any]:
    """/live and /predict by user_id on the real server, one worker, wrk with 4 connections,
    alternated `rounds` times (the machine is shared: a ratio is taken within each round)."""
    from churnctl.workspace import Workspace
    from tests.serving_demo import running_server

    ids = ",".join(str(u) for u in users[:WRK_USERS])
    # Both sides build each request in Lua, so the load generator (on the same two cores)
    # costs the same per request on either side and the ratio is the server's.
    scripts = {"live": ('request = function()\n  return wrk.format("GET")\nend\n' + REPORT),
               "predict": (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local ids = {{{ids}}}\n"
        "request = function()\n"
        "  return wrk.format(nil, nil, nil, '{\"user_id\": ' .. ids[math.random(#ids)] .. '}')\n"
        f"end\n{REPORT}")}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, text in scripts.items():
            paths[name] = Path(tmp) / f"{name}.lua"
            paths[name].write_text(text)
        with running_server(Workspace(root), {"reload_interval_seconds": 0, **(options or {})}
                            ) as server:
            for name in ("live", "predict"):
                _wrk(server.url + f"/{name}", paths[name], 2)  # warm-up
            pid = server.process.pid
            for _ in range(rounds):
                pair: dict[str, Any] = {}
                for name in ("live", "predict"):
                    began = cpu_seconds(pid)
                    pair[name] = _wrk(server.url + f"/{name}", paths[name], seconds)
                    requests = pair[name]["requests_per_second"] * seconds
                    pair[name]["server_cpu_us_per_request"] = round(
                        (cpu_seconds(pid) - began) / max(requests, 1) * 1e6, 1)
                pair["predict_over_live"] = round(pair["predict"]["requests_per_second"]
                                                  / pair["live"]["requests_per_second"], 3)
                # What the ratio would be with the load generator on other cores.
                pair["server_cpu_live_over_predict"] = round(
                    pair["live"]["server_cpu_us_per_request"]
                    / pair["predict"]["server_cpu_us_per_request"], 3)
                runs.append(pair)
    ratio = statistics.median(run["predict_over_live"] for run in runs)
    errors = sum(run["predict"]["non_2xx"] for run in runs)
    return {"rounds": runs, "predict_over_live_median": ratio,
            "server_cpu_live_over_predict_median": statistics.median(
                run["server_cpu_live_over_predict"] for run in runs),
            "predict_p99_ms_median": statistics.median(r["predict"]["p99_ms"] for r in runs),
            "meets_target": bool(ratio >= 0.5 and errors == 0)}


def _handler(root: Path, users: list[int]) -> dict[str, Any]:
    """The /predict handler's own time for `{"user_id"}` (look-up, validation, scoring; no
    HTTP), called in-process on the app the server builds."""
    import asyncio

    from starlette.requests import Request

    from churnctl.serving.app import create_app
    from churnctl.workspace import Workspace

    app = create_app(Workspace(root), {"reload_interval_seconds": 0})
    app.state.holder.refresh()
    handler = next(r.endpoint for r in app.routes if getattr(r, "path", "") == "/predict")

    async def call(user: int) -> float:
        body = json.dumps({"user_id": user}).encode()
        scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        began = time.perf_counter()
        answer = await handler(Request(scope, receive))
        assert answer.status_code == 200, answer.body[:300]
        return (time.perf_counter() - began) * 1000

    async def all_calls() -> list[float]:
        for user in users[:50]:
            await call(user)
        return [await call(user) for user in users]

    samples = sorted(asyncio.run(all_calls()))
    return {"p50_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3), "calls": len(samples)}


def _redis_ping(address: str, users: list[int]) -> dict[str, float]:
    """The floor under any Redis look-up on this machine: a PING's round trip."""
    import redis

    host, port = address.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    return _latency(lambda _: client.ping(), users)


def _offline(root: Path) -> dict[str, Any]:
    """The point-in-time join of train + test + latest rows, then a full materialize."""
    import pandas as pd

    from churnctl.backends.features_feast import FeastFeaturesOptions, repo_spec
    from churnctl.feast_store import store as S
    from churnctl.runs import latest_artifact
    from churnctl.workspace import Workspace

    artifact = latest_artifact(Workspace(root), "features")
    parts = [pd.read_parquet(artifact.table(name), columns=["user_id", "as_of"])
             for name in ("train", "test", "latest")]
    entities = pd.concat(parts, ignore_index=True)
    spec = repo_spec(FeastFeaturesOptions(), artifact.meta("feature_schema")["numeric"])
    began = time.perf_counter()
    store = S.open_store(root / "feature_repo")
    opened = time.perf_counter() - began
    began = time.perf_counter()
    S.historical(store, spec, entities)
    join = time.perf_counter() - began
    meta = artifact.meta("feature_store")
    began = time.perf_counter()
    S.materialize(store, S.end_of(pd.Timestamp(meta["last_day"])),
                  pd.Timestamp(meta["first_day"]).to_pydatetime(), incremental=False)
    return {"open_store_s": round(opened, 3), "point_in_time_join_s": round(join, 3),
            "join_rows": len(entities), "materialize_full_s": round(time.perf_counter() - began, 3),
            "offline_rows": int(pd.read_parquet(artifact.table("user_features"),
                                                columns=["user_id"]).shape[0])}


def _redis() -> tuple[subprocess.Popen[bytes], str] | None:
    if shutil.which("redis-server") is None:
        return None
    from tests.redis_service import start_redis

    folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    return start_redis(folder)


def default_data(seconds: int) -> dict[str, Any]:
    import pandas as pd

    from churnctl.runs import latest_artifact
    from churnctl.workspace import Workspace

    figures: dict[str, Any] = {"data": "built-in default: 2,000 users x 120 days"}
    stage: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-feast-") as tmp:
        root = Path(tmp)
        stage["pandas"] = round(_run(root)["seconds"], 3)
        latest = pd.read_parquet(latest_artifact(Workspace(root), "features").table("latest"))
        ids = [int(u) for u in latest["user_id"]]
        users = [random.Random(7).choice(ids) for _ in range(LOOKUPS)]
        names = tuple(c for c in latest.columns if c not in ("user_id", "as_of"))
        # Only users the stale-row rule lets through (the TTL): /predict must answer 200.
        fresh = set(latest.loc[latest["as_of"] >= latest["as_of"].max() - pd.Timedelta(
            days=1), "user_id"].astype(int))
        users = [u for u in users if u in fresh]
        lookup = {"v1_parquet_snapshot": _lookup(root, users, names)}
        handler = {"v1_parquet_snapshot": _handler(root, users)}
        http = {"v1_parquet_snapshot": _http(root, users, seconds)}
        feast = ("features.backend=feast",)
        stage["feast_sqlite"] = round(_run(root, *feast, only=("features",))["seconds"], 3)
        again = _run(root, *feast, only=("features",))
        stage["feast_sqlite_second_run"] = {"seconds": round(again["seconds"], 3),
                                            "status": again["status"]}
        lookup["feast_sqlite"] = _lookup(root, users, names)
        lookup["feast_sqlite_online_read"] = _lookup(root, users, names, fast=False)
        lookup["feast_sqlite_uncached"] = _lookup(root, users, names, cache_users=0)
        handler["feast_sqlite"] = _handler(root, users)
        http["feast_sqlite"] = _http(root, users, seconds)
        # Every request reads the store: the figure for users not asked about since the last
        # change to the store (the cache serves the others; serve option online_cache_users).
        http["feast_sqlite_uncached"] = _http(root, users, seconds,
                                              options={"online_cache_users": 0})
        figures["feast_offline"] = _offline(root)
        server = _redis()
        if server is not None:
            process, address = server
            try:
                redis = (*feast, "features.online_store=redis",
                         f"features.redis_connection={address}")
                stage["feast_redis"] = round(_run(root, *redis, only=("features",))["seconds"], 3)
                lookup["feast_redis"] = _lookup(root, users, names)
                lookup["feast_redis_uncached"] = _lookup(root, users, names, cache_users=0)
                lookup["feast_redis_online_read"] = _lookup(root, users, names, fast=False)
                lookup["redis_ping_floor"] = _redis_ping(address, users)
                handler["feast_redis"] = _handler(root, users)
                http["feast_redis"] = _http(root, users, seconds)
                http["feast_redis_uncached"] = _http(root, users, seconds,
                                                     options={"online_cache_users": 0})
            finally:
                process.terminate()
                process.wait(timeout=10)
    figures.update(features_stage_s=stage, lookup_ms=lookup, predict_handler_ms=handler,
                   predict_by_user_id_http=http)
    return figures


def large_data(users: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"data": f"built-in, {users:,} users x 120 days"}
    with tempfile.TemporaryDirectory(prefix="bench-feast-large-") as tmp:
        root = Path(tmp)
        size = (f"ingest.users={users}",)
        pandas = _run(root, *size, only=("ingest", "validate", "features"))
        feast = _run(root, *size, "features.backend=feast", only=("features",))
        figures["features_stage_s"] = {"pandas": round(pandas["seconds"], 3),
                                       "feast_sqlite": round(feast["seconds"], 3)}
        figures["feast_offline"] = _offline(root)
    join = figures["feast_offline"]["point_in_time_join_s"]
    figures["meets_target"] = bool(join <= 60)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_feast needs wrk: apt-get install -y wrk")
    figures: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0]}
    figures["default"] = default_data(args.seconds)
    figures["load_average_after_default"] = os.getloadavg()[0]
    if not args.skip_large:
        figures["large"] = large_data(args.users)
    elif (RESULTS / "feast.json").is_file():  # keep the last large-data figures
        figures["large"] = json.loads((RESULTS / "feast.json").read_text()).get("large")
    figures["load_average_at_end"] = os.getloadavg()[0]  # a shared machine: read with it
    write_results("feast", figures)


if __name__ == "__main__":
    main()
