"""features.spark: the pandas features on Spark, end to end through the CLI, and its bad input.

One Spark session for the whole test run (tests/spark_session.py); the end-to-end run reuses it
in-process. Parity is asserted against the pandas run of the same built-in data (`small_run`).
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.artifacts import ArtifactRef
from churnctl.cli.main import app
from churnctl.domain import features as F
from churnctl.spark import session as S
from tests.conftest import SMALL
from tests.spark_session import SPARK_MASTER, spark  # noqa: F401  (a session fixture)

TABLES = ("user_daily", "train", "test", "latest")
PROFILE = ("name: spark-test\nextends: v1\nstages:\n  features:\n    backend: spark\n"
           f"    options: {{master: \"{SPARK_MASTER}\"}}\n")


def _features(root: Path, record: dict) -> ArtifactRef:
    row = next(s for s in record["stages"] if s["name"] == "features")
    return ArtifactRef.load(root / row["artifact"])


@pytest.fixture(scope="module")
def spark_run(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # noqa: F811
    """`churnctl run` with a v1 profile whose features stage is Spark, on the small data."""
    root = tmp_path_factory.mktemp("spark_run")
    (root / "spark.yaml").write_text(PROFILE)
    result = CliRunner().invoke(app, ["run", "--workspace", str(root), "--profile",
                                      str(root / "spark.yaml"), "--json", *SMALL],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def _frames(ref: ArtifactRef, name: str) -> pd.DataFrame:
    return pd.read_parquet(ref.table(name))


@pytest.mark.slow
def test_spark_features_equal_pandas_features(spark_run, small_run) -> None:
    ours, theirs = _features(*spark_run), _features(*small_run)
    assert [s["backend"] for s in spark_run[1]["stages"] if s["name"] == "features"] == ["spark"]
    for name in TABLES:
        got, want = _frames(ours, name), _frames(theirs, name)
        assert list(got.columns) == list(want.columns), name
        assert len(got) == len(want) > 0, name
        for column in want.columns:
            a, b = got[column], want[column]
            if b.dtype.kind == "M":  # Spark writes microseconds, pandas nanoseconds: same instants
                assert a.dtype.kind == "M" and (a.to_numpy() == b.to_numpy()).all(), column
            elif b.dtype.kind == "f":
                assert a.dtype == b.dtype, column
                np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=0, atol=1e-9,
                                           err_msg=f"{name}.{column}")
            else:
                assert a.dtype == b.dtype and a.equals(b), f"{name}.{column}"
    # the labels and the embargoed split are the same, and so is the contract train reads
    assert ours.meta("split") == theirs.meta("split")
    assert ours.meta("feature_schema") == theirs.meta("feature_schema")
    assert (ours.path / "train.parquet").is_dir()  # a part-directory, committed whole


@pytest.mark.slow
def test_train_on_spark_features_gives_the_pandas_model_metrics(spark_run, small_run) -> None:
    ours, theirs = spark_run[1]["metrics"], small_run[1]["metrics"]
    for key in ("pr_auc", "roc_auc", "brier", "train_rows", "test_rows", "train_churn_rate"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


def test_static_attributes_as_of_each_snapshot_match_pandas(spark, tmp_path: Path) -> None:  # noqa: F811
    """A users history (`valid_from`): both backends take the attributes valid on each day."""
    from churnctl.spark.feature_job import run_features

    start = pd.Timestamp("2025-01-01")
    config = F.FeatureConfig(windows=(7, 14), label_horizon_days=10, snapshot_every_days=2)
    users = pd.DataFrame({
        "user_id": [1, 1, 2, 3, 3, 3], "signup_date": [start - pd.Timedelta(days=3)] * 6,
        "plan": ["free", "paid", "free", "paid", "free", "paid"],
        "is_paid": [0, 1, 0, 1, 0, 1], "country": ["IN", "US", "UK", "CA", "AU", "SG"],
        "marketing_source": ["ads"] * 6,
        "valid_from": [pd.NaT, start + pd.Timedelta(days=20), pd.NaT,
                       start + pd.Timedelta(days=5), start + pd.Timedelta(days=30, hours=6),
                       start + pd.Timedelta(days=44)]})
    rng = np.random.default_rng(7)
    n = 400
    kinds = np.array(["login", "video_watch", "quiz_attempt", "payment_success"])
    events = pd.DataFrame({
        "user_id": rng.integers(1, 4, n),
        "event_time": start + pd.to_timedelta(rng.integers(0, 50 * 86400, n), unit="s"),
        "event_type": kinds[rng.integers(0, 4, n)],
        "watch_minutes": rng.uniform(0, 60, n).round(2), "quiz_score": rng.uniform(0, 100, n)})
    users.to_parquet(tmp_path / "users.parquet")
    events.to_parquet(tmp_path / "events.parquet")
    result = run_features(spark, str(tmp_path / "users.parquet"),
                          str(tmp_path / "events.parquet"), str(tmp_path / "out"), config)
    activity = F.daily_activity(users, events, config.activity_events)
    days = F.training_days(activity, config)
    train, test = F.time_split(F.snapshots(activity, users, days, config, with_labels=True),
                               config.test_fraction, config.embargo)
    assert result.has_history and result.snapshot_days == days
    for name, want in (("train", train), ("test", test)):
        got = pd.read_parquet(tmp_path / "out" / f"{name}.parquet")
        assert len(got) == len(want) > 0
        for column in ("user_id", "plan", "country", "is_paid", F.LABEL):
            assert got[column].tolist() == want[column].tolist(), (name, column)
        np.testing.assert_allclose(got["watch_minutes_14d"], want["watch_minutes_14d"], atol=1e-9)
    assert set(train["plan"]) == {"free", "paid"}  # the history changed values in the window


def _broken_ingest(small_run: tuple[Path, dict], target: Path) -> dict[str, Path]:
    root, record = small_run
    dirs = {}
    for stage in ("ingest", "validate"):
        row = next(s for s in record["stages"] if s["name"] == stage)
        dirs[stage] = target / stage
        shutil.copytree(root / row["artifact"], dirs[stage])
    events = dirs["ingest"] / "events.parquet"
    pd.read_parquet(events).drop(columns=["watch_minutes"]).to_parquet(events, index=False)
    return dirs


def test_missing_input_column_reads_the_same_in_both_backends(
        spark, small_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    dirs = _broken_ingest(small_run, tmp_path)
    monkeypatch.chdir(tmp_path)
    messages = {}
    for backend in ("pandas", "spark"):
        result = CliRunner().invoke(app, [
            "stage", "run", "features", "--force", "--params-json",
            json.dumps({"backend": backend}), "--input", f"ingest={dirs['ingest']}",
            "--input", f"validate={dirs['validate']}", "--out", str(tmp_path / backend)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        messages[backend] = lines[0]
        assert not (tmp_path / backend).exists()  # nothing half-written
    assert messages["pandas"] == messages["spark"]
    assert "events.parquet: missing column(s) watch_minutes" in messages["spark"]


def test_a_cluster_master_that_does_not_answer_fails_fast(
        finished_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.monotonic()
    result = CliRunner().invoke(app, [
        "run", "--workspace", str(finished_workspace), *SMALL, "--set", "features.backend=spark",
        "--set", f"features.master=spark://127.0.0.1:{port}",
        "--set", "features.connect_timeout_seconds=2"])
    assert result.exit_code == 2, result.output
    assert time.monotonic() - began < 60
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"127.0.0.1:{port} did not answer within 2 s" in lines[0]


def test_a_malformed_master_url_is_a_profile_error(cli) -> None:
    result = cli("plan", "--set", "features.backend=spark", "--set", "features.master=mesos://x")
    assert result.exit_code == 2
    assert "master" in result.output and "spark://HOST:PORT" in result.output


def _fake_java(folder: Path, version: str) -> Path:
    home = folder / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2020-01-01' >&2\n")
    java.chmod(0o755)
    return home


@pytest.mark.parametrize("command", ["plan", "doctor"])
def test_plan_and_doctor_name_a_java_too_old_or_missing(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    (tmp_path / "spark.yaml").write_text(PROFILE)
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, "11.0.2")))
    result = cli(command, "--profile", "spark.yaml", "--json")
    assert "Java 17 or later" in result.stdout and "is Java 11" in result.stdout, result.output
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-such-jdk"))
    result = cli(command, "--profile", "spark.yaml", "--json")
    assert "no java found via JAVA_HOME" in result.stdout, result.output
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, "21.0.1")))
    result = cli(command, "--profile", "spark.yaml", "--json")
    assert "Java 17 or later" not in result.stdout, result.output


def test_java_versions_parse_old_and_new_schemes() -> None:
    assert S.parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert S.parse_java_major('java version "1.8.0_392"') == 8
    assert S.parse_java_major('openjdk version "21" 2023-09-19') == 21
    assert S.parse_java_major("garbage") is None


def test_shuffle_partitions_follow_the_cores_locally_and_the_profile_on_a_cluster() -> None:
    assert S.shuffle_partitions("local[3]", None) == 6
    assert S.shuffle_partitions("local", None) == 2
    assert S.shuffle_partitions("spark://h:7077", None) == 200
    assert S.shuffle_partitions("k8s://https://h:6443", 64) == 64
    conf = S.session_conf("local[2]", "x")
    assert conf["spark.sql.session.timeZone"] == "UTC" and conf["spark.ui.enabled"] == "false"


def test_spark_session_is_not_imported_by_the_cli_help() -> None:
    import subprocess
    import sys

    code = ("import sys; from churnctl.cli.main import app; "
            "from churnctl.registry import describe; describe('features', 'spark'); "
            "print('pyspark' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
