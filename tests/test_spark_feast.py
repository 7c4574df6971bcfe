"""features.spark with `feature_store: feast` (v4's default): the per-user-day table Spark
writes is a Feast store's offline source, materialized into the SQLite online store, and the
workspace then serves from and streams into that store as a features.feast one does.

The reference is features.feast on the same built-in data: its online store must hold the same
users with the same values and the same feature timestamps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.runs import latest_artifact
from churnctl.workspace import Workspace
from tests.conftest import SMALL
from tests.spark_session import SPARK_MASTER, spark  # noqa: F401  (a session fixture)

pytest.importorskip("feast")
pytestmark = pytest.mark.slow

PROFILE = ("name: spark-feast\nextends: v1\nstages:\n  features:\n    backend: spark\n"
           f"    options: {{master: \"{SPARK_MASTER}\", feature_store: feast}}\n")


def _run(root: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["run", "--json", "--workspace", str(root), *args, *SMALL],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def workspaces(spark, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    """The same data through features.spark + Feast and through features.feast."""
    roots = {name: tmp_path_factory.mktemp(name) for name in ("spark", "feast")}
    (roots["spark"] / "p.yaml").write_text(PROFILE)
    record = _run(roots["spark"], "--profile", str(roots["spark"] / "p.yaml"))
    features = next(s for s in record["stages"] if s["name"] == "features")
    assert features["backend"] == "spark" and features["status"] == "ran"
    # The reference needs no model: its stages up to features only.
    _run(roots["feast"], "--profile", "v1", "--set", "features.backend=feast",
         *[arg for stage in ("ingest", "validate", "features") for arg in ("--only", stage)])
    return roots


def _online(root: Path, users: list[int]) -> pd.DataFrame:
    from churnctl.feast_store.online import OnlineFeatures

    ws = Workspace(root)
    artifact = latest_artifact(ws, "features")
    online = OnlineFeatures(ws, artifact.meta("feature_store"), artifact.meta("feature_schema"),
                            artifact.table("latest"), "user_id", fast=False)
    rows = online.read(users)
    kept = [(uid, when, values) for uid, (when, values) in zip(users, rows, strict=True)
            if when is not None]
    return pd.DataFrame({"user_id": [u for u, _, _ in kept],
                         "when": [w for _, w, _ in kept],
                         **{n: [v.get(n) for _, _, v in kept] for n in online.names}})


def test_spark_materializes_the_online_store_features_feast_does(workspaces) -> None:
    ours = latest_artifact(Workspace(workspaces["spark"]), "features")
    theirs = latest_artifact(Workspace(workspaces["feast"]), "features")
    assert (ours.path / "user_features.parquet").is_dir()  # Spark's part-directory, as is
    assert (workspaces["spark"] / "feature_repo" / "data" / "user_features.parquet").is_dir()
    mine, want = ours.meta("feature_store"), theirs.meta("feature_store")
    assert mine == want  # the same window, users and store: what serve and the sink read
    # The offline source itself: features.feast's rows (Spark's timestamps are naive UTC).
    key = ["user_id", "event_timestamp"]
    a = pd.read_parquet(ours.table("user_features")).sort_values(key, ignore_index=True)
    b = pd.read_parquet(theirs.table("user_features")).sort_values(key, ignore_index=True)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    assert (a["event_timestamp"].dt.tz_localize("UTC") == b["event_timestamp"]).all()
    for column in b.columns[2:]:
        if b[column].dtype.kind == "f":
            np.testing.assert_allclose(a[column], b[column], rtol=0, atol=1e-9, err_msg=column)
        else:
            assert a[column].tolist() == b[column].tolist(), column
    # Every user either offline source has (more than the latest table's: a user inactive
    # on the last day keeps an older, stale row), plus one neither has.
    users = sorted(set(pd.read_parquet(ours.table("user_features"))["user_id"])
                   | set(pd.read_parquet(theirs.table("user_features"))["user_id"]))
    got, expected = _online(workspaces["spark"], [*users, 10**9]), _online(
        workspaces["feast"], [*users, 10**9])
    assert len(got) == len(expected) > len(pd.read_parquet(ours.table("latest")))
    assert got["user_id"].tolist() == expected["user_id"].tolist()
    assert got["when"].tolist() == expected["when"].tolist()
    for column in got.columns[2:]:
        a, b = got[column], expected[column]
        if b.map(lambda v: isinstance(v, float)).all():
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=0, atol=1e-9,
                                       err_msg=column)
        else:
            assert a.tolist() == b.tolist(), column


def test_predict_and_the_stream_sink_use_the_feast_store(workspaces) -> None:
    from fastapi.testclient import TestClient

    from churnctl.cli.serve import _serve_backend
    from churnctl.feast_store.online import OnlineFeatures
    from churnctl.serving.app import create_app
    from churnctl.streaming.feast_sink import feast_sink_for
    from churnctl.streaming.online_state import Features

    root = workspaces["spark"]
    ws = Workspace(root)
    artifact = latest_artifact(ws, "features")
    latest = pd.read_parquet(artifact.table("latest"))
    user = int(latest["user_id"].iloc[0])
    last_day = artifact.meta("feature_store")["last_day"]

    def predict(client: TestClient) -> dict:
        answer = client.post("/predict", json={"user_id": user})
        assert answer.status_code == 200, answer.text
        return answer.json()

    _, options = _serve_backend(str(root / "p.yaml"), ws, {})
    app_ = create_app(ws, options)
    app_.state.holder.refresh()
    client = TestClient(app_)
    assert isinstance(app_.state.holder.features, OnlineFeatures)
    assert predict(client)["as_of"] == f"{last_day}T00:00:00+00:00"  # Feast's timestamp

    # `stream score` decides by the artifact's meta: a sink into this store; what it writes
    # is what /predict answers next.
    sink = feast_sink_for(ws)
    assert sink is not None and sink.where == "sqlite"
    schema = artifact.meta("feature_schema")
    names = [*schema["numeric"], *schema["categorical"]]
    row = latest[latest["user_id"] == user].iloc[0]
    columns = {n: (np.array([float(row[n]) + (1.0 if n == "events_7d" else 0.0)])
                   if n in schema["numeric"] else [row[n]]) for n in names}
    when = pd.Timestamp(last_day) + pd.Timedelta(hours=13)
    sink.stage([{"user_id": user, "event_time": when}],
               Features(columns, np.array([0]), np.array([True])))
    sink.flush()
    assert sink.rows_written == 1
    answer = predict(client)
    assert answer["as_of"] == f"{last_day}T13:00:00+00:00"



@pytest.mark.parametrize("store", ["none", "feast"])
def test_the_spark_submit_job_writes_the_offline_source_with_feature_store_feast(
        spark, monkeypatch: pytest.MonkeyPatch, store: str) -> None:  # noqa: F811
    """`pipeline compile --target spark-submit` passes the profile's features options to the
    job: with `feature_store: feast` the cluster job also writes the source the store loads
    (run_features' writing of it is the stage's, tested above)."""
    from churnctl.spark import feature_job

    asked = []

    def recorded(*args: object, source: str | None = None) -> feature_job.FeatureResult:
        asked.append(source)
        return feature_job.FeatureResult([1], 1, 1, 0.5, 1, "", "", False)

    monkeypatch.setattr(feature_job, "run_features", recorded)
    assert feature_job.main(["--users", "u", "--events", "e", "--out", "o", "--options",
                             json.dumps({"master": SPARK_MASTER, "feature_store": store})]) == 0
    assert asked == [None if store == "none" else "user_features"]


def test_feature_store_feast_without_feast_installed_is_one_line_before_spark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from churnctl.backends.features_spark import SparkFeatures, SparkFeaturesOptions
    from churnctl.errors import BackendUnavailable
    from churnctl.spark import session
    from churnctl.stages import StageContext

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "feast" else real(name, *a))
    monkeypatch.setattr(session, "spark_session", None)  # reached: a TypeError, not the line
    ctx = StageContext("features", SparkFeaturesOptions(feature_store="feast"), {},
                       tmp_path, Workspace(tmp_path))
    ctx.inputs["ingest"] = None  # type: ignore[assignment]
    with pytest.raises(BackendUnavailable, match=r"^features.feature_store feast needs python "
                       r"module feast; install with: pip install 'churnctl\[feast\]'$"):
        SparkFeatures().run(ctx)


def test_the_repo_s_source_switches_between_a_file_and_a_part_directory(tmp_path: Path) -> None:
    """A workspace run with v3 (features.feast: one file) then v4 (Spark: a directory) and
    back: the repo's source is replaced whole each time, nothing of the other left."""
    from churnctl.feast_store.publish import copy_source

    single, parts = tmp_path / "one.parquet", tmp_path / "parts.parquet"
    single.write_bytes(b"file")
    parts.mkdir()
    for name in ("part-00000.parquet", "part-00001.parquet"):
        (parts / name).write_bytes(name.encode())
    target = tmp_path / "repo" / "data" / "user_features.parquet"
    target.parent.mkdir(parents=True)
    for source in (single, parts, parts, single):
        copy_source(source, target)
        if source.is_file():
            assert target.is_file() and target.read_bytes() == b"file"
        else:
            assert sorted(p.name for p in target.iterdir()) == sorted(
                p.name for p in parts.iterdir())
        assert sorted(p.name for p in target.parent.iterdir()) == ["user_features.parquet"]
