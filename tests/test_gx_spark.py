"""validate.gx-spark: validate.gx's suite on Spark DataFrames, with validate.gx's verdicts.

Parity: every case of the bad-input corpus (tests/test_gx_parity.py, itself checked against
the pandas gate) runs `ingest` + `validate` once with gx and once with gx-spark on the same
files: same exit code, same offending table.column set of gate errors, same after_signup
warnings, and a one-line failure naming the same values. One Spark session for all of it
(tests/spark_session.py), reused in-process by the CLI; small data (60 users x 70 days).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from tests.conftest import SMALL
from tests.spark_session import SPARK_MASTER, spark  # noqa: F401  (a session fixture)
from tests.test_gx_parity import CORPUS

pytestmark = pytest.mark.slow

SPARK_OPTIONS = ("--set", f"validate.master={SPARK_MASTER}", "--set",
                 "validate.shuffle_partitions=2")


@pytest.fixture(scope="module")
def clean_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(GeneratorConfig(users=60, days=70, seed=3))


def _run(root: Path, files: Path, validator: str) -> Any:
    extra = SPARK_OPTIONS if validator == "gx-spark" else ()
    return CliRunner().invoke(app, [
        "run", "--workspace", str(root), "--only", "ingest", "--only", "validate",
        "--set", "ingest.backend=files", "--set", f"ingest.users={files / 'users.csv'}",
        "--set", f"ingest.events={files / 'events.csv'}",
        "--set", f"validate.backend={validator}", *extra], catch_exceptions=False)


def _failed(root: Path, severity: str) -> set[tuple[str, str, str]] | None:
    report = root / "reports" / "validation.json"
    if not report.exists():
        return None
    return {(c["table"], c["column"], c["check"])
            for c in json.loads(report.read_text())["checks"]
            if not c["passed"] and c["severity"] == severity}


def _errors(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_gx_and_gx_spark_agree(spark, tmp_path: Path, clean_tables, case: str) -> None:  # noqa: F811
    mutate, needles = CORPUS[case]
    users, events = mutate(*clean_tables)
    files = tmp_path / "in"
    files.mkdir()
    users.to_csv(files / "users.csv", index=False)
    events.to_csv(files / "events.csv", index=False)
    gx_result = _run(tmp_path / "gx", files, "gx")
    spark_result = _run(tmp_path / "spark", files, "gx-spark")
    assert spark_result.exit_code == gx_result.exit_code, (gx_result.output,
                                                           spark_result.output)
    # The same expectations fail, critical and warning alike (GX's own kinds included).
    assert _failed(tmp_path / "spark", "error") == _failed(tmp_path / "gx", "error")
    assert _failed(tmp_path / "spark", "warning") == _failed(tmp_path / "gx", "warning")
    if case == "event_before_signup":
        assert ("events", "event_time", "after_signup") in _failed(tmp_path / "spark", "warning")
    if gx_result.exit_code == 0:
        assert not needles and _failed(tmp_path / "spark", "error") == set()
        docs = tmp_path / "spark" / ".churnctl" / "artifacts" / "validate"
        assert list(docs.glob("*/data_docs/index.html"))
        assert (tmp_path / "spark" / "gx" / "checkpoints" / "churnctl_spark_events.json").is_file()
        return
    [line] = _errors(spark_result)
    assert all(needle in line for needle in needles), line
    if _failed(tmp_path / "gx", "error") is None:  # stopped by ingest, before validate
        assert _errors(spark_result) == _errors(gx_result)
    else:
        assert "Data Docs: " in line
        assert Path(line.rsplit("Data Docs: ", 1)[1].split(";")[0]).is_file()


def test_a_cluster_master_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "run", "--workspace", str(tmp_path), "--only", "ingest", "--only", "validate",
        "--set", "ingest.users=30", "--set", "ingest.days=45",
        "--set", "validate.backend=gx-spark", "--set", "validate.master=spark://127.0.0.1:9",
        "--set", "validate.connect_timeout_seconds=1"])
    assert result.exit_code == 2, result.output
    [line] = _errors(result)
    assert "validate.master spark://127.0.0.1:9" in line and "did not answer" in line
    assert not (tmp_path / "reports" / "validation.json").exists()


# As docs/v4.md shows it; the stages reuse the test run's session whatever master it names.
PROFILE = """# gx-spark.yaml: v3 with its validation and features on Spark, one session for both
name: gx-spark
extends: v3
orchestrator: {backend: local}
stages:
  validate:
    backend: gx-spark
    options: {master: "local[*]"}
  features:
    backend: spark
    options: {master: "local[*]"}
"""


@pytest.fixture
def no_mlflow_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_v3_with_gx_spark_and_spark_features_runs_end_to_end(
        spark, tmp_path: Path, no_mlflow_server) -> None:  # noqa: F811
    assert PROFILE in (Path(__file__).parent.parent / "docs" / "v4.md").read_text()
    (tmp_path / "gx-spark.yaml").write_text(PROFILE)
    result = CliRunner().invoke(app, ["run", "--workspace", str(tmp_path), "--profile",
                                      str(tmp_path / "gx-spark.yaml"), "--json", *SMALL],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    backends = {s["name"]: s["backend"] for s in record["stages"]}
    assert backends["validate"] == "gx-spark" and backends["features"] == "spark"
    validate = next(s for s in record["stages"] if s["name"] == "validate")
    assert Path(validate["summary"]["data_docs"]).is_file()
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["checks"] and all(c["passed"] for c in report["checks"]
                                    if c["severity"] == "error")
    assert record["metrics"]["pr_auc"] > 0


def test_plan_and_run_name_a_java_too_old(cli, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "jdk-11"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text(
        "#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    (home / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(home))
    result = cli("plan", "--set", "validate.backend=gx-spark", "--json")
    assert result.exit_code == 0, result.output
    validate = next(s for s in json.loads(result.stdout)["stages"] if s["stage"] == "validate")
    assert validate["status"] == "unavailable"
    assert "Java 17 or later" in validate["reason"] and "is Java 11" in validate["reason"]
    blocked = cli("run", "--set", "validate.backend=gx-spark")
    assert blocked.exit_code == 2 and "Java 17 or later" in blocked.stderr, blocked.output
    assert not (tmp_path / "reports" / "validation.json").exists()


def test_both_engines_share_the_suites_and_a_users_expectation(
        spark, tmp_path: Path) -> None:  # noqa: F811
    """gx then gx-spark in one workspace: the suites stay byte-identical (no thrash between
    engines), each engine keeps its own checkpoint, and an expectation a user adds to
    churnctl's suite is validated on Spark (and reruns the stage)."""
    def run(validator: str) -> Any:
        extra = SPARK_OPTIONS if validator == "gx-spark" else ()
        return CliRunner().invoke(app, [
            "run", "--workspace", str(tmp_path), "--only", "ingest", "--only", "validate",
            "--set", "ingest.users=60", "--set", "ingest.days=70",
            "--set", f"validate.backend={validator}", *extra], catch_exceptions=False)

    assert run("gx").exit_code == 0
    suite = tmp_path / "gx" / "expectations" / "churnctl_events.json"
    written = suite.read_bytes()
    assert run("gx-spark").exit_code == 0
    assert suite.read_bytes() == written
    checkpoints = tmp_path / "gx" / "checkpoints"
    assert {p.name for p in checkpoints.glob("*events.json")} == {
        "churnctl_events.json", "churnctl_spark_events.json"}
    data = json.loads(written)
    data["expectations"].append({
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "watch_minutes", "min_value": 0, "max_value": 1},
        "meta": {"owner": "team"}})
    suite.write_text(json.dumps(data, indent=2))
    failed = run("gx-spark")  # most video watches are longer than a minute
    assert failed.exit_code == 2, failed.output
    [line] = _errors(failed)
    assert "watch_minutes: expect_column_values_to_be_between" in line, line
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    [team] = [c for c in report["checks"] if c["check"] == "expect_column_values_to_be_between"]
    assert not team["passed"] and team["failing_rows"] > 0 and team["severity"] == "error"


def test_validate_suite_shows_a_gx_spark_profiles_severities(cli, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "name: s\nextends: v3\nstages:\n  validate:\n    backend: gx-spark\n"
        "    options: {master: \"local[2]\", severity: {after_signup: critical}}\n")
    result = cli("validate", "suite", "--profile", "s.yaml", "--json")
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.stdout) if r["kind"] == "after_signup"]
    assert row["severity"] == "critical"


def test_a_customer_table_on_a_gx_spark_profile_gets_the_gx_table_gate(
        cli, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: s\nextends: v3\nstages:\n  validate:\n"
                                     "    backend: gx-spark\n")
    (tmp_path / "t.csv").write_text("id,churn,x\n1,yes,3\n2,no,4\n")
    result = cli("plan", "--profile", "s.yaml", "--data", "t.csv", "--target", "churn",
                 "--json")
    assert result.exit_code == 0, result.output
    validate = next(s for s in json.loads(result.stdout)["stages"] if s["stage"] == "validate")
    assert validate["backend"] == "gx-table"


def test_spark_batches_equal_the_pandas_gates_columns(spark, tmp_path: Path) -> None:  # noqa: F811
    """spark_batches against gate.events_batch / event_parameters on what the corpus lacks:
    a signup at midnight and mid-day, a duplicated user with two signups (the first row
    counts), an unknown user, a null user id, and instants before 1970."""
    from churnctl.quality_gx.contract import SIGNUP_COLUMN, UNKNOWN_USER_COLUMN
    from churnctl.quality_gx.gate import event_parameters
    from churnctl.quality_gx.gate import events_batch as pandas_events_batch
    from churnctl.quality_gx.spark_batches import event_days, events_batch, read_table

    users = pd.DataFrame({
        "user_id": [1, 2, 3, 2],
        "signup_date": pd.to_datetime(["2025-01-02", "2025-01-03 10:30", "1969-12-31 23:59:59.5",
                                       "2024-01-01"], format="ISO8601")})
    events = pd.DataFrame({
        "event_id": [10, 11, 12, 13, 14],
        "user_id": pd.array([1, 2, 3, 999, None], dtype="Int64"),
        "event_time": pd.to_datetime(["2025-01-01 23:00", "2025-01-03 09:00", "1969-12-31 12:00",
                                      "2025-01-05", "2025-02-01 08:00:00.123456789"],
                                     format="ISO8601")})
    users.to_parquet(tmp_path / "users.parquet")
    events.to_parquet(tmp_path / "events.parquet")
    users, events = pd.read_parquet(tmp_path / "users.parquet"), \
        pd.read_parquet(tmp_path / "events.parquet")
    frames = {t: read_table(spark, str(tmp_path / f"{t}.parquet")) for t in ("users", "events")}
    got = events_batch(frames["users"], frames["events"]).toPandas().sort_values("event_id")
    want = pandas_events_batch(users, events).sort_values("event_id")
    assert got["event_time"].tolist() == want["event_time"].dt.floor("us").tolist()
    assert got[UNKNOWN_USER_COLUMN].tolist()[3] == 999
    assert got[UNKNOWN_USER_COLUMN].isna().tolist() == want[UNKNOWN_USER_COLUMN].isna().tolist()
    assert got[SIGNUP_COLUMN].tolist() == want[SIGNUP_COLUMN].tolist()
    options = {"earliest": pd.Timestamp("1960-01-01"), "as_of": None, "max_future_days": 1}
    assert event_parameters(pd.DataFrame(), event_days(frames["events"]), **options) == \
        event_parameters(users, events, **options)
