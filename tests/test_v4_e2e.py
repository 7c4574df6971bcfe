"""`churnctl run --profile v4` end to end through the CLI, against a real Tansu broker and on
Spark: events and users produced to topics, then the shipped v4 profile (ingest.kafka,
validate.gx-spark, features.spark, train.sklearn, MLflow tracking) with only what a user sets
for their environment: the bootstrap servers (CHURNCTL_KAFKA_BOOTSTRAP) and the topic names,
in a profile that `extends: v4`. Then `serve` (fastapi-ab) answers /predict for a user the run
knows, and `stream score` scores every event with the promoted model.

One JVM for the whole test run: the stages reuse the session of tests/spark_session.py, which
is only possible in this process, so `run` and `plan` add `--set orchestrator.backend=local`
(the stages in-process). v4's orchestrator, DVC, runs each stage as its own `churnctl stage
run` process, each Spark stage with its own JVM (3.5 minutes here at load 5, against about 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from tests.kafka_broker import kafka_broker, read_topic, unique  # noqa: F401
from tests.serving_demo import ServerProcess, free_port
from tests.spark_session import spark  # noqa: F401  (the session fixture)

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.slow

USERS, DAYS = 300, 100
DOCS = Path(__file__).resolve().parents[1] / "docs" / "v4.md"
# As docs/v4.md shows it.
PROFILE = """# my-v4.yaml: v4 on this environment's topics (the broker: CHURNCTL_KAFKA_BOOTSTRAP)
name: my-v4
extends: v4
stages:
  ingest:
    options: {topic: shop-events, users_topic: shop-users}
"""
IN_PROCESS = ("--set", "orchestrator.backend=local")


def _invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _java_children() -> list[Any]:
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]


@pytest.fixture
def environment(kafka_broker: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                ) -> dict[str, str]:
    monkeypatch.setenv("CHURNCTL_KAFKA_BOOTSTRAP", kafka_broker)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # v2's store in the workspace
    return {"events": unique("events"), "users": unique("users"), "scores": unique("scores")}


def test_v4_runs_end_to_end_then_serves_and_scores_the_stream(
        spark, environment: dict[str, str], kafka_broker: str,  # noqa: F811
        tmp_path: Path) -> None:
    topics = environment
    _invoke("stream", "produce", "--topic", topics["events"], "--users", str(USERS), "--days",
            str(DAYS), "--users-topic", topics["users"])
    total = len(generate(GeneratorConfig(users=USERS, days=DAYS))[1])
    assert PROFILE in DOCS.read_text()
    profile = tmp_path / "my-v4.yaml"
    profile.write_text(PROFILE.replace("shop-events", topics["events"])
                       .replace("shop-users", topics["users"]))
    ws = tmp_path / "ws"
    common = ("--profile", str(profile), "--workspace", str(ws))
    jvms = {p.pid for p in _java_children()}
    assert len(jvms) == 1  # the fixture's

    plan = json.loads(_invoke("plan", *common, *IN_PROCESS, "--json").stdout)
    assert [(s["stage"], s["backend"], s["status"]) for s in plan["stages"]] == [
        ("ingest", "kafka", "run"), ("validate", "gx-spark", "run"),
        ("features", "spark", "run"), ("train", "sklearn", "run")]

    first = _invoke("run", *common, *IN_PROCESS, "--json")
    record = json.loads(first.stdout)
    assert [(s["name"], s["backend"], s["status"]) for s in record["stages"]] == [
        ("ingest", "kafka", "ran"), ("validate", "gx-spark", "ran"),
        ("features", "spark", "ran"), ("train", "sklearn", "ran")]
    assert "starting Spark" not in first.stderr  # both Spark stages reused the session
    assert {p.pid for p in _java_children()} == jvms
    stages = {s["name"]: s for s in record["stages"]}
    assert stages["ingest"]["summary"]["events_rows"] == total
    assert stages["ingest"]["summary"]["users_rows"] == USERS
    assert record["metrics"]["validation_checks_passed"] == record["metrics"][
        "validation_checks_total"] > 0
    assert record["metrics"]["pr_auc"] > 0
    # The Spark stage's part-directory tables reached MLflow as datasets.
    assert record["tracking"]["status"] == "logged", record["tracking"]
    assert "tracking failed" not in first.stderr
    # features.spark fed Feast (v4's feature_store: feast): the repo and the online store.
    assert "features: materialized from" in " ".join(first.stderr.split())
    assert (ws / "feature_repo" / "feature_store.yaml").is_file()

    # Nothing new on the topic: the same offset range, the same key, every stage cached.
    replan = json.loads(_invoke("plan", *common, *IN_PROCESS, "--json").stdout)
    assert [s["status"] for s in replan["stages"]] == ["cached"] * 4
    again = json.loads(_invoke("run", *common, *IN_PROCESS, "--json").stdout)
    assert [s["status"] for s in again["stages"]] == ["cached"] * 4
    ingest_again = next(s for s in again["stages"] if s["name"] == "ingest")
    assert ingest_again["key"] == stages["ingest"]["key"]
    assert ingest_again["external"]["kafka:events"] == stages["ingest"]["external"][
        "kafka:events"]

    version = _production_version(ws)
    latest = _table(ws, "features", "latest")
    known = int(latest["user_id"].iloc[0])
    _serve_and_predict(common, ws, version, known)

    result = _invoke("stream", "score", *common, "--topic", topics["events"],
                     "--output-topic", topics["scores"], "--session-timeout-ms", "2000",
                     "--stop-when-idle", "3", "--batch", "2000", "--json")
    assert json.loads(result.stdout)["scored"] == total
    # v4's Spark features made a Feast store: the scorer writes users' features there too.
    assert "features also to the Feast online store (sqlite)" in " ".join(result.stderr.split())
    scores = [json.loads(m.value()) for m in read_topic(kafka_broker, topics["scores"], total)]
    events = _table(ws, "ingest", "events")
    assert sorted(s["event_id"] for s in scores) == sorted(events["event_id"])  # one each
    assert {s["model_version"] for s in scores} == {version}

    # New events on the topic: plan names the range that changed, before reading anything.
    _invoke("stream", "produce", "--topic", topics["events"], "--users", "5", "--days", "45")
    ingest = json.loads(_invoke("plan", *common, *IN_PROCESS, "--json").stdout)["stages"][0]
    assert ingest["status"] == "run" and "kafka:events" in ingest["reason"], ingest


def _production_version(ws: Path) -> int:
    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.workspace import Workspace

    production = ModelRegistry(Workspace(ws).registry).production()
    assert production is not None
    return int(production.version)


def _table(ws: Path, stage: str, name: str) -> pd.DataFrame:
    from churnctl.stages import ArtifactRef
    from churnctl.workspace import Workspace

    workspace = Workspace(ws)
    key = (workspace.artifacts / stage / "LATEST").read_text().strip()
    ref = ArtifactRef.load(workspace.artifact_dir(stage, key))
    return pd.read_parquet(ref.table(name))


def _serve_and_predict(common: tuple[str, ...], ws: Path, version: int, user: int) -> None:
    """`churnctl serve` in a child process, as a user runs it. After one run only the champion
    has a model: serve says so and /ready is 503 until the challenger has one (here an A/A
    test on the one model, set by `churnctl ab alias` while the server runs)."""
    port = free_port()
    log = ws / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "churnctl", "serve", *common, "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()})
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait("/live")
        text = " ".join(log.read_text().split())
        assert "variant challenger: no model holds alias 'challenger' yet" in text, text
        assert "variant champion" not in text
        assert server.status("/ready") == 503
        _invoke("ab", "alias", "challenger", str(version), *common)
        server.wait("/ready", timeout=30)  # picked up without a restart
        answer = httpx.post(f"{server.url}/predict", json={"user_id": user}, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == version and body["variant"] in {"champion",
                                                                         "challenger"}
        assert 0.0 <= body["churn_probability"] <= 1.0
        unknown = httpx.post(f"{server.url}/predict", json={"user_id": 10**9}, timeout=10)
        assert unknown.status_code == 404, unknown.text
    finally:
        server.stop()
