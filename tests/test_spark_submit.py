"""`churnctl pipeline compile --target spark-submit`: the job directory, the exact command, the
SparkApplication checked against the spark-operator CRD schema, and the script really runs."""

from __future__ import annotations

import copy
import json
import runpy
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from churnctl.artifacts import ArtifactRef
from churnctl.pipelines.spark_submit import SPARK_OPERATOR_VERSION, application_errors
from tests.spark_session import spark  # noqa: F401  (a session fixture)

SPARK = ["--set", "features.backend=spark"]


def _compile(cli, *args: str) -> tuple[Path, dict]:
    result = cli("pipeline", "compile", "--target", "spark-submit", *SPARK, "-o", "job",
                 "--json", *args)
    assert result.exit_code == 0, result.output
    return Path("job").resolve(), json.loads(result.stdout)


def _command(job: Path) -> list[str]:
    line = next(x for x in (job / "spark-submit.sh").read_text().splitlines()
                if x.startswith("exec "))
    return shlex.split(line)[1:]


def test_the_sparkapplication_validates_and_the_schema_catches_a_broken_one(cli) -> None:
    job, summary = _compile(cli)
    app = yaml.safe_load((job / "sparkapplication.yaml").read_text())
    assert summary["spark_operator"] == SPARK_OPERATOR_VERSION
    assert application_errors(app) == []
    assert app["spec"]["sparkConf"]["spark.sql.session.timeZone"] == "UTC"
    broken = copy.deepcopy(app)
    broken["spec"]["type"] = "Perl"
    broken["spec"]["driver"]["cpu"] = 1  # a typo of cores
    del broken["spec"]["sparkVersion"]
    errors = "\n".join(application_errors(broken))
    assert "'Perl' is not one of" in errors
    assert "'cpu' was unexpected" in errors and "'sparkVersion' is a required" in errors


def test_the_command_line_per_master(cli) -> None:
    job, _ = _compile(cli)  # the default: Kubernetes, files from the image
    command = _command(job)
    assert command[:5] == ["spark-submit", "--master", "k8s://https://kubernetes.default.svc:443",
                           "--deploy-mode", "cluster"]
    assert "spark.kubernetes.container.image=ghcr.io/churnctl/churnctl-spark:0.1.0" in command
    assert command[command.index("--py-files") + 1].startswith("local:///")
    job, _ = _compile(cli, "--master", "spark://spark-master:7077", "--data", "/srv/churn")
    command = _command(job)
    assert command[4] == "client"  # standalone masters cannot run a Python driver in-cluster
    script = command[command.index("--py-files") + 2]
    assert (job / script).is_file() and (job / command[command.index("--py-files") + 1]).is_file()
    args = command[command.index(script) + 1:]
    assert args[:6] == ["--users", "/srv/churn/ingest/users.parquet", "--events",
                        "/srv/churn/ingest/events.parquet", "--out", "/srv/churn/features"]
    assert json.loads(args[7])["windows"] == [7, 14, 30]  # every definition spelled out
    conf = dict(line.split(" ", 1) for line in (job / "spark-defaults.conf").read_text()
                .splitlines())
    for item in command:
        if "=" in item and item.startswith("spark."):
            key, value = item.split("=", 1)
            assert conf[key] == value


def test_the_zip_carries_the_job_s_imports(cli, tmp_path: Path) -> None:
    job, _ = _compile(cli)
    with zipfile.ZipFile(job / "churnctl.zip") as archive:
        names = set(archive.namelist())
    assert {"churnctl/spark/feature_job.py", "churnctl/domain/features.py"} <= names
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import churnctl.spark.feature_job as j; "
            "import churnctl; print(churnctl.__file__)")
    done = subprocess.run([sys.executable, "-c", code, str(job / "churnctl.zip")],
                          capture_output=True, text=True, check=True)
    assert "churnctl.zip" in done.stdout


@pytest.mark.slow
def test_the_compiled_script_computes_the_pandas_features(
        cli, spark, small_run, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    job, _ = _compile(cli)
    root, record = small_run
    stages = {s["name"]: ArtifactRef.load(root / s["artifact"]) for s in record["stages"]}
    out = job.parent / "features"
    options = _command(job)[-1]
    monkeypatch.setattr(sys, "argv", [
        "feature_pipeline.py", "--users", str(stages["ingest"].table("users")), "--events",
        str(stages["ingest"].table("events")), "--out", str(out), "--options", options])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(job / "feature_pipeline.py"), run_name="__main__")
    assert done.value.code == 0
    for name in ("train", "test", "latest"):
        got = pd.read_parquet(out / f"{name}.parquet")
        want = pd.read_parquet(stages["features"].table(name))
        assert got.shape == want.shape and got["user_id"].tolist() == want["user_id"].tolist()


def test_compiling_needs_the_spark_features_backend(cli) -> None:
    result = cli("pipeline", "compile", "--target", "spark-submit", "-o", "job")
    assert result.exit_code == 2
    assert "features.backend is 'pandas'" in result.output
    assert not Path("job").exists()


def test_a_bad_master_is_refused_before_writing(cli) -> None:
    result = cli("pipeline", "compile", "--target", "spark-submit", *SPARK, "--master",
                 "mesos://x:5050", "-o", "job")
    assert result.exit_code == 2 and "master" in result.output
    assert not Path("job").exists()
