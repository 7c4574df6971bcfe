"""The streaming path end to end through the CLI, against a real Tansu broker: events and
users produced to topics, `churnctl run` with ingest.kafka on v1's pandas stages (no JVM),
then `stream score` on the model that run promoted, one score per event. The whole v4
profile, on Spark, is tests/test_v4_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from tests.kafka_broker import kafka_broker, read_topic, unique  # noqa: F401

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.slow


def test_produce_run_on_kafka_then_stream_score(kafka_broker: str, tmp_path: Path,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNCTL_KAFKA_BOOTSTRAP", kafka_broker)
    runner = CliRunner()
    topic, users_topic, scores = unique("events"), unique("users"), unique("scores")
    result = runner.invoke(app, ["stream", "produce", "--topic", topic, "--users", "300",
                                 "--days", "100", "--users-topic", users_topic],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    profile = tmp_path / "stream.yaml"
    profile.write_text(f"name: stream\nextends: v1\nstages:\n  ingest:\n    backend: kafka\n"
                       f"    options: {{topic: {topic}, users_topic: {users_topic}}}\n")
    workspace = tmp_path / "ws"
    result = runner.invoke(app, ["run", "--profile", str(profile), "--workspace",
                                 str(workspace), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [s["status"] for s in record["stages"]] == ["ran"] * 4
    assert record["stages"][0]["backend"] == "kafka"
    result = runner.invoke(app, ["stream", "score", "--workspace", str(workspace), "--profile",
                                 str(profile), "--topic", topic, "--output-topic", scores,
                                 "--session-timeout-ms", "2000", "--stop-when-idle", "3",
                                 "--batch", "2000", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    total = len(generate(GeneratorConfig(users=300, days=100))[1])
    assert json.loads(result.stdout)["scored"] == total
    ids = {json.loads(m.value())["event_id"] for m in read_topic(kafka_broker, scores, total)}
    assert len(ids) == total
