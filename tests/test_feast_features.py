"""features.feast: the generated feature repo, the point-in-time training set (parity with
features.pandas on the same data) and the online store.

One small run with the Feast backend is built per module (Feast costs ~10 s to import and the
machine is shared): every test reads it or works on its own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.backends.features_pandas import PandasFeatures, PandasFeaturesOptions
from churnctl.cli.main import app as cli_app
from churnctl.runs import latest_artifact
from churnctl.stages import StageContext
from churnctl.workspace import Workspace
from tests.conftest import SMALL
from tests.redis_service import free_port, redis_server  # noqa: F401  (a session fixture)

pytest.importorskip("feast")
pytestmark = pytest.mark.slow

FEAST = ["--profile", "v1", "--set", "features.backend=feast", *SMALL]


def invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli_app, [*args, "--workspace", str(root)], catch_exceptions=False)


@pytest.fixture(scope="module")
def feast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("feast_run")
    result = invoke(root, "run", "--json", *FEAST)
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def test_run_with_feast_writes_the_repo_and_materializes(feast_run) -> None:
    root, record = feast_run
    repo = root / "feature_repo"
    assert sorted(p.name for p in repo.iterdir()) == [
        ".feastignore", "data", "entities.py", "feature_store.yaml", "features.py"]
    assert 'join_keys=["user_id"]' in (repo / "entities.py").read_text()
    text = (repo / "features.py").read_text()
    assert "user_activity = FeatureView(" in text and "user_profile = FeatureView(" in text
    assert "registry: ../.churnctl/feast/registry.db" in (repo / "feature_store.yaml").read_text()
    assert (root / ".churnctl/feast/online_store.db").stat().st_size > 0
    state = json.loads((root / ".churnctl/feast/materialized.json").read_text())
    assert state["online"] == "sqlite" and state["end"].startswith("2025-04-10")
    assert [row["status"] for row in record["stages"]] == ["ran"] * 4


def test_parity_with_pandas_backend(feast_run, tmp_path: Path) -> None:
    """Same rows, values to 1e-9 and labels as features.pandas on the same ingest."""
    ws = Workspace(feast_run[0])
    feast_out = latest_artifact(ws, "features")
    ingest = latest_artifact(ws, "ingest")
    assert feast_out is not None and ingest is not None
    ctx = StageContext("features", PandasFeaturesOptions(), {"ingest": ingest}, tmp_path, ws)
    output = PandasFeatures().run(ctx)
    for name in ("train", "test", "latest"):
        mine = pd.read_parquet(feast_out.table(name))
        theirs = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert len(mine) > 100 and list(mine.columns) == list(theirs.columns)
        pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=0, atol=1e-9)
        if name != "latest":
            assert mine["churn_label"].tolist() == theirs["churn_label"].tolist()
    assert feast_out.meta("feature_schema") == output.meta["feature_schema"]
    assert feast_out.meta("split") == output.meta["split"]


def test_second_run_is_cached_and_does_not_import_feast(feast_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    before = (root / "feature_repo/features.py").stat().st_mtime_ns
    code = ("import sys, json; from typer.testing import CliRunner; "
            "from churnctl.cli.main import app; "
            f"r = CliRunner().invoke(app, ['run', '--json', '--workspace', {str(root)!r}, "
            f"*{FEAST!r}]); assert r.exit_code == 0, r.output; "
            "print(json.dumps({'feast': 'feast' in sys.modules, "
            "'status': [s['status'] for s in json.loads(r.stdout)['stages']]}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**__import__("os").environ, "FEAST_USAGE": "False"})
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"feast": False, "status": ["cached"] * 4}
    assert (root / "feature_repo/features.py").stat().st_mtime_ns == before


def _source_rows(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / "feature_repo/data/user_features.parquet")


@pytest.fixture(scope="module")
def feast_client(feast_run) -> Any:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app

    app = create_app(Workspace(feast_run[0]), {"reload_interval_seconds": 0})
    app.state.holder.refresh()
    return TestClient(app)


def test_predict_by_user_id_reads_the_online_store(feast_run, feast_client) -> None:
    from churnctl.feast_store.online import OnlineFeatures

    root = feast_run[0]
    assert isinstance(feast_client.app.state.holder.features, OnlineFeatures)
    latest = pd.read_parquet(latest_artifact(Workspace(root), "features").table("latest"))
    user = {k: (v.item() if hasattr(v, "item") else v) for k, v in latest.iloc[0].items()}
    answer = feast_client.post("/predict", json={"user_id": user["user_id"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["as_of"] == "2025-04-10T00:00:00+00:00"
    assert "stale" not in answer.json()
    features = {k: v for k, v in user.items()
                if k not in ("user_id", "as_of")}
    direct = feast_client.post("/predict", json={"features": features})
    assert direct.json()["churn_probability"] == pytest.approx(
        answer.json()["churn_probability"], abs=1e-12)
    unknown = feast_client.post("/predict", json={"user_id": "nobody-42"})
    assert unknown.status_code == 404 and "nobody-42" in unknown.json()["message"]


def test_stale_online_row_is_refused_or_flagged(feast_run, feast_client) -> None:
    from churnctl.feast_store.online import OnlineFeatures

    root = feast_run[0]
    rows = _source_rows(root)
    newest = rows.groupby("user_id")["event_timestamp"].max()
    old = int(newest[newest < newest.max() - pd.Timedelta(days=2)].index[0])
    refused = feast_client.post("/predict", json={"user_id": old})
    assert refused.status_code == 409 and repr(old) in refused.json()["message"]
    assert "TTL" in refused.json()["message"]
    artifact = latest_artifact(Workspace(root), "features")
    meta = {**artifact.meta("feature_store"), "stale_features": "flag"}
    flagging = OnlineFeatures(Workspace(root), meta, artifact.meta("feature_schema"),
                              artifact.table("latest"), "user_id")
    _, stamp = flagging.get(old, ("events_7d",))
    assert stamp.stale and stamp[:10] == str(newest[old].date())


def test_later_run_materializes_incrementally(feast_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    result = invoke(root, "run", "--json", *FEAST, "--set", "ingest.days=104")
    assert result.exit_code == 0, result.output
    stages = {row["name"]: row for row in json.loads(result.stdout)["stages"]}
    done = stages["features"]["summary"]["materialized"]
    assert done["incremental"] is True and done["end"].startswith("2025-04-14")
    from churnctl.feast_store.store import open_store

    user = pd.read_parquet(latest_artifact(Workspace(root), "features").table("latest"))
    online = open_store(root / "feature_repo").get_online_features(
        features=["user_activity:events_7d"], entity_rows=[{"user_id": user["user_id"][0]}],
    ).to_dict(include_event_timestamps=True)
    assert online["events_7d"][0] == user["events_7d"][0]


def test_redis_online_store_serves_and_a_stopped_redis_is_one_line(
        feast_run, tmp_path: Path, redis_server: str) -> None:  # noqa: F811
    from churnctl.feast_store.online import OnlineFeatures

    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    redis = ["--set", "features.online_store=redis",
             "--set", f"features.redis_connection={redis_server}"]
    result = invoke(root, "run", "--json", *FEAST, *redis)
    assert result.exit_code == 0, result.output
    assert "type: redis" in (root / "feature_repo/feature_store.yaml").read_text()
    artifact = latest_artifact(Workspace(root), "features")
    online = OnlineFeatures(Workspace(root), artifact.meta("feature_store"),
                            artifact.meta("feature_schema"), artifact.table("latest"), "user_id")
    assert online.where == "redis"
    latest = pd.read_parquet(artifact.table("latest"))
    record, stamp = online.get(int(latest["user_id"][0]), ("events_30d", "plan"))
    assert record == {"events_30d": latest["events_30d"][0], "plan": latest["plan"][0]}
    assert stamp.startswith("2025-04-10")
    assert online.get(10**9, ("events_30d",)) is None  # Redis has no key: no row, not stale
    asked = [list(names) for _, names in online.views()]
    for _ in range(3):  # Feast's Redis store appends to the list of names it is given
        assert online.get(int(latest["user_id"][0]), ("plan",))[0] == {"plan": latest["plan"][0]}
    assert [list(names) for _, names in online.views()] == asked
    down = f"127.0.0.1:{free_port()}"
    failed = invoke(root, "run", *FEAST, "--set", "features.online_store=redis",
                    "--set", f"features.redis_connection={down}")
    assert failed.exit_code == 2
    assert down in failed.output and "Traceback" not in failed.output


def test_feasts_own_cli_reads_the_generated_repo(feast_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    feast = Path(sys.executable).parent / "feast"
    done = subprocess.run([str(feast), "-c", str(root / "feature_repo"), "plan"],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "FEAST_USAGE": "False"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "user_activity" in done.stdout and "user_profile" in done.stdout


def test_an_invalid_repo_file_is_one_line_naming_it(tmp_path: Path) -> None:
    from churnctl.errors import DataError
    from churnctl.feast_store.repo import RepoSpec, write_repo
    from churnctl.feast_store.store import load_definitions

    repo = tmp_path / "feature_repo"
    write_repo(repo, RepoSpec(("events_7d",)))
    names = sorted(type(obj).__name__ for obj in load_definitions(repo))
    assert names == ["Entity", "FeatureView", "FeatureView"]
    (repo / "features.py").write_text((repo / "features.py").read_text().replace(
        "ttl=timedelta(days=2)", "ttl=timedelta(days=2", 1))
    with pytest.raises(DataError) as caught:
        load_definitions(repo)
    message = str(caught.value)
    assert str(repo / "features.py") in message and "\n" not in message
    assert write_repo(repo, RepoSpec(("events_7d",))) == ["features.py"]  # regenerated
    assert write_repo(repo, RepoSpec(("events_7d",))) == []  # idempotent


def test_plan_and_help_do_not_import_feast(tmp_path: Path) -> None:
    code = ("import sys; from typer.testing import CliRunner; from churnctl.cli.main import app; "
            f"r = CliRunner().invoke(app, ['plan', '--profile', 'v3', '--workspace', "
            f"{str(tmp_path)!r}]); h = CliRunner().invoke(app, ['--help']); "
            "print(r.exit_code, h.exit_code, 'feast' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split()[-1] == "False", done.stdout


def test_features_commands_apply_materialize_get(feast_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    assert invoke(root, "features", "apply").exit_code == 0
    done = invoke(root, "features", "materialize", "--incremental", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["incremental"] is True
    latest = pd.read_parquet(latest_artifact(Workspace(root), "features").table("latest"))
    user = int(latest["user_id"][0])
    got = invoke(root, "features", "get", str(user), "--json")
    assert got.exit_code == 0, got.output
    (row,) = json.loads(got.stdout)
    assert row["as_of"].startswith("2025-04-10") and row["events_7d"] == latest["events_7d"][0]
    missing = invoke(root, "features", "get", "999999999")
    assert missing.exit_code == 2 and "999999999" in missing.output
    empty = invoke(tmp_path / "empty", "features", "get", "1")
    assert empty.exit_code == 2 and "no Feast feature repo" in empty.output


def _online_events_times_ten(root: Path) -> pd.DataFrame:
    """Rewrite every latest user's `events_30d` in the online store (x10 + 100), through Feast;
    the artifact's latest.parquet keeps the old values. The rows written, for comparing."""
    from churnctl.feast_store.store import open_store

    rows = _source_rows(root)
    newest = rows[rows["event_timestamp"] == rows["event_timestamp"].max()].copy()
    newest["events_30d"] = newest["events_30d"] * 10 + 100
    store = open_store(root / "feature_repo")
    view = store.get_feature_view("user_activity")
    keep = ["user_id", "event_timestamp", *[f.name for f in view.features]]
    store.write_to_online_store("user_activity", newest[keep].reset_index(drop=True))
    return newest


def test_drift_and_batch_scoring_read_through_the_online_store(feast_run, tmp_path: Path
                                                               ) -> None:
    from churnctl.monitoring.check import CheckRequest, run_check
    from churnctl.serving.batch import score_latest

    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    ws = Workspace(root)
    request = CheckRequest(profile="v1", overrides=["features.backend=feast"])
    before = run_check(ws, request, log=lambda _: None)
    assert before["current"]["kind"] == "online"
    assert before["current"]["source"].startswith("Feast online store (sqlite)")
    latest = pd.read_parquet(latest_artifact(ws, "features").table("latest"))
    assert before["current"]["rows"] == len(latest)
    assert "events_30d" not in before["failing"]
    scored_before = score_latest(ws, out_dir=tmp_path / "p1")
    changed = _online_events_times_ten(root)
    after = run_check(ws, request, log=lambda _: None)
    assert "events_30d" in after["failing"]  # latest.parquet alone would show no change
    scored_after = score_latest(ws, out_dir=tmp_path / "p2")
    one = pd.read_parquet(scored_before.files["parquet"]).set_index("user_id")
    two = pd.read_parquet(scored_after.files["parquet"]).set_index("user_id")
    moved = (one["churn_probability"] - two["churn_probability"]).abs() > 1e-12
    assert moved[moved.index.isin(changed["user_id"])].mean() > 0.5
    # Without Feast in the profile (pandas), the same workspace is read from the table.
    with pytest.raises(Exception, match="no current data"):
        run_check(ws, CheckRequest(profile="v1"), log=lambda _: None)


def test_redis_down_ready_503_predict_503_run_exit_2_without_credentials(
        feast_run, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app
    from tests.redis_service import start_redis

    root = tmp_path / "ws"
    shutil.copytree(feast_run[0], root, symlinks=True)
    secret = "s3cret-pass"
    process, address = start_redis(tmp_path, "--requirepass", secret)
    connection = f"{address},password={secret}"
    redis = [*FEAST, "--set", "features.online_store=redis",
             "--set", f"features.redis_connection={connection}"]
    try:
        result = invoke(root, "run", "--json", *redis)
        assert result.exit_code == 0, result.output
        app = create_app(Workspace(root), {"reload_interval_seconds": 0})
        app.state.holder.refresh()
        client = TestClient(app)
        assert client.get("/ready").status_code == 200
        # the 503s below come from the direct read (fast_read.py), not only Feast's
        assert app.state.holder.features.reader.startswith("direct redis read")
        user = int(pd.read_parquet(latest_artifact(Workspace(root), "features").table(
            "latest"))["user_id"][0])
        assert client.post("/predict", json={"user_id": user}).status_code == 200
    finally:
        process.kill()  # Redis goes down under a serving API
        process.wait(timeout=10)
    ready = client.get("/ready")
    assert ready.status_code == 503
    reason = ready.json()["reason"]
    assert f"redis at {address}" in reason and secret not in reason and "/" not in reason
    down = client.post("/predict", json={"user_id": user})
    assert down.status_code == 503 and address in down.json()["message"]
    assert secret not in down.text
    failed = invoke(root, "run", *redis)
    assert failed.exit_code == 2
    lines = [line for line in failed.output.splitlines() if address in line]
    assert len(lines) == 1 and "does not answer" in lines[0] and secret not in failed.output
    assert "Traceback" not in failed.output
