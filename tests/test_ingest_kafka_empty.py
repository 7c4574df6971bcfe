"""ingest.kafka with nothing to read: a fresh workspace whose group another workspace's ingest
already committed to the end of the topic gets one line naming the group (not an empty
artifact that the later stages would validate and train on), and nothing is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnctl.workspace import Workspace
from tests.kafka_broker import kafka_broker, unique  # noqa: F401
from tests.test_ingest_kafka import committed, ingest, invoke, profile

pytest.importorskip("confluent_kafka")


def test_a_group_at_the_end_with_no_earlier_artifact_is_one_line(
        kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    topic, users, group = unique("events"), unique("users"), unique("shared")
    result = invoke("stream", "produce", "--bootstrap", kafka_broker, "--topic", topic,
                    "--users", "10", "--days", "45", "--users-topic", users)
    assert result.exit_code == 0, result.output
    shared = profile(tmp_path, kafka_broker, topic, users, group)
    result, first = ingest(tmp_path / "first", shared)
    assert result.exit_code == 0 and first["summary"]["events_rows"] > 0, result.output
    ends = committed(kafka_broker, topic, group)

    result, _ = ingest(tmp_path / "second", shared)  # same group, a new workspace
    assert result.exit_code == 2, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert f"nothing to read from {topic!r}" in line and f"group {group!r}" in line
    assert "--set ingest.group=NAME" in line
    assert committed(kafka_broker, topic, group) == ends
    assert not (Workspace(tmp_path / "second").artifacts / "ingest" / "LATEST").exists()

    # The same workspace again: nothing new, so its artifact is cached, not refused.
    result, again = ingest(tmp_path / "first", shared)
    assert result.exit_code == 0 and again["status"] == "cached", result.output
    assert json.loads(result.stdout)["stages"][0]["summary"]["events_rows"] > 0
