"""ingest.kafka against a real Tansu broker: the bounded range, its cache key, replay, de-dup
by event_id, offsets committed only after the artifact (a failure in between loses nothing and
doubles nothing), and bad input (malformed record, unknown topic, broker down)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.hashing import file_sha256
from tests.kafka_broker import kafka_broker, unique  # noqa: F401

pytest.importorskip("confluent_kafka")
USERS, DAYS = 15, 50


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def profile(folder: Path, bootstrap: str, topic: str, users_topic: str, group: str) -> Path:
    path = folder / "kafka.yaml"
    path.write_text(
        "name: kafka-test\nextends: v1\nstages:\n  ingest:\n    backend: kafka\n"
        f"    options: {{topic: {topic}, users_topic: {users_topic}, group: {group}, "
        f"bootstrap: '{bootstrap}', timeout: 10}}\n")
    return path


def ingest(workspace: Path, profile_path: Path):
    result = invoke("run", "--only", "ingest", "--workspace", str(workspace), "--profile",
                    str(profile_path), "--json")
    row = json.loads(result.stdout)["stages"][0] if result.exit_code == 0 else None
    return result, row


def committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    from churnctl.streaming.kafka_client import client_config, topic_partitions

    consumer = Consumer(client_config(bootstrap, **{"group.id": group}))
    try:
        return {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(topic, p) for p in topic_partitions(bootstrap, topic)], timeout=10)}
    finally:
        consumer.close()


def artifact(workspace: Path, row: dict) -> Path:
    return workspace / row["artifact"]


@pytest.fixture
def topics(kafka_broker: str, tmp_path: Path) -> dict:  # noqa: F811
    names = {"topic": unique("events"), "users_topic": unique("users"), "group": unique("ingest")}
    result = invoke("stream", "produce", "--bootstrap", kafka_broker, "--topic", names["topic"],
                    "--users", str(USERS), "--days", str(DAYS), "--users-topic",
                    names["users_topic"])
    assert result.exit_code == 0, result.output
    names["profile"] = profile(tmp_path, kafka_broker, **names)
    return names


def more_events(tmp_path: Path, bootstrap: str, topic: str, ids_from: int) -> pd.DataFrame:
    """Re-send the first 30 built-in events (duplicates) and 30 new ones (new event_ids)."""
    _, events = generate(GeneratorConfig(users=USERS, days=DAYS))
    fresh = events.tail(30).assign(event_id=lambda f: f["event_id"] + ids_from)
    extra = pd.concat([events.head(30), fresh], ignore_index=True)
    extra.to_parquet(tmp_path / "more.parquet", index=False)
    result = invoke("stream", "produce", "--bootstrap", bootstrap, "--topic", topic, "--from",
                    str(tmp_path / "more.parquet"))
    assert result.exit_code == 0, result.output
    return fresh


def test_range_cached_chained_replayed(kafka_broker: str, topics: dict,  # noqa: F811
                                       tmp_path: Path) -> None:
    users, events = generate(GeneratorConfig(users=USERS, days=DAYS))
    workspace = tmp_path / "ws"
    result, first = ingest(workspace, topics["profile"])
    assert result.exit_code == 0, result.output
    folder = artifact(workspace, first)
    got = pd.read_parquet(folder / "events.parquet")
    expected = events.sort_values("event_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    assert len(pd.read_parquet(folder / "users.parquet")) == len(users)
    meta = json.loads((folder / "manifest.json").read_text())["contents"]["meta"]["kafka"]
    ends = {int(p): o for p, o in meta["to"].items()}
    assert sum(ends.values()) == len(events) and set(meta["read_from"].values()) == {0}
    assert committed(kafka_broker, topics["topic"], topics["group"]) == ends
    assert first["external"]["kafka:events"].startswith(topics["topic"])

    # Nothing new: the same covered range, the same key, the cached artifact.
    result, again = ingest(workspace, topics["profile"])
    assert again["status"] == "cached" and again["key"] == first["key"]

    # New events and re-sent old ones: the artifact extends the previous one, no duplicates.
    fresh = more_events(tmp_path, kafka_broker, topics["topic"], 10_000_000)
    result, third = ingest(workspace, topics["profile"])
    assert third["status"] == "ran" and third["key"] != first["key"]
    assert third["summary"]["new_events"] == 60 and third["summary"]["duplicates_dropped"] == 30
    chained = pd.read_parquet(artifact(workspace, third) / "events.parquet")
    assert chained["event_id"].is_unique
    assert set(chained["event_id"]) == set(events["event_id"]) | set(fresh["event_id"])

    # Replay: a new group in another workspace reads the whole topic at once into the same data.
    (tmp_path / "replay").mkdir()
    replay_profile = profile(tmp_path / "replay", kafka_broker, topics["topic"],
                             topics["users_topic"], unique("replay"))
    result, replayed = ingest(tmp_path / "ws2", replay_profile)
    assert result.exit_code == 0, result.output
    assert replayed["external"]["kafka:events"] == third["external"]["kafka:events"]
    assert (file_sha256(artifact(tmp_path / "ws2", replayed) / "events.parquet")
            == file_sha256(artifact(workspace, third) / "events.parquet"))


def test_failure_between_artifact_and_commit_loses_nothing(
        kafka_broker: str, topics: dict, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from churnctl.streaming import topic_read

    def broker_gone(*_args: object) -> None:
        raise RuntimeError("killed between the artifact commit and the offset commit")

    workspace = tmp_path / "ws"
    with monkeypatch.context() as patched:
        patched.setattr(topic_read, "commit_offsets", broker_gone)
        with pytest.raises(RuntimeError, match="killed between"):
            CliRunner().invoke(app, ["run", "--only", "ingest", "--workspace", str(workspace),
                                     "--profile", str(topics["profile"])],
                               catch_exceptions=False)
    assert set(committed(kafka_broker, topics["topic"], topics["group"]).values()) == {-1001}
    # More events arrive before the next run: it reads from the uncommitted offsets again.
    fresh = more_events(tmp_path, kafka_broker, topics["topic"], 20_000_000)
    result, row = ingest(workspace, topics["profile"])
    assert result.exit_code == 0, result.output
    _, events = generate(GeneratorConfig(users=USERS, days=DAYS))
    got = pd.read_parquet(artifact(workspace, row) / "events.parquet")
    assert got["event_id"].is_unique
    assert set(got["event_id"]) == set(events["event_id"]) | set(fresh["event_id"])
    ends = json.loads((artifact(workspace, row) / "manifest.json").read_text()
                      )["contents"]["meta"]["kafka"]["to"]
    assert committed(kafka_broker, topics["topic"], topics["group"]) == {
        int(p): o for p, o in ends.items()}


def test_failed_commit_with_nothing_new_commits_on_the_cached_run(
        kafka_broker: str, topics: dict, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    from churnctl.streaming import topic_read

    workspace = tmp_path / "ws"
    with monkeypatch.context() as patched:
        patched.setattr(topic_read, "commit_offsets", lambda *_: (_ for _ in ()).throw(
            RuntimeError("no commit")))
        with pytest.raises(RuntimeError):
            CliRunner().invoke(app, ["run", "--only", "ingest", "--workspace", str(workspace),
                                     "--profile", str(topics["profile"])],
                               catch_exceptions=False)
    _, row = ingest(workspace, topics["profile"])
    assert row["status"] == "cached"  # the same range: the committed artifact, then the commit
    assert sum(committed(kafka_broker, topics["topic"], topics["group"]).values()) == len(
        generate(GeneratorConfig(users=USERS, days=DAYS))[1])


def test_malformed_record_stops_with_its_offset_and_commits_nothing(
        kafka_broker: str, topics: dict, tmp_path: Path) -> None:  # noqa: F811
    from confluent_kafka import Producer

    from churnctl.streaming.kafka_client import client_config

    producer = Producer(client_config(kafka_broker))
    # A schema change upstream: the amount field is gone.
    producer.produce(topics["topic"], key=b"1", partition=0, value=json.dumps({
        "event_id": 99, "user_id": 1, "event_time": "2025-01-01T00:00:00",
        "event_type": "login", "course_id": None, "watch_minutes": 0,
        "quiz_score": None}).encode())
    producer.flush(10)
    result, _ = ingest(tmp_path / "ws", topics["profile"])
    assert result.exit_code == 2
    assert "partition 0 offset" in result.output and "missing field(s) amount" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert set(committed(kafka_broker, topics["topic"], topics["group"]).values()) == {-1001}
    assert not list((tmp_path / "ws").glob("**/ingest/*/manifest.json"))


def test_unknown_topic_and_unreachable_broker(kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.redis_service import free_port

    missing = profile(tmp_path, kafka_broker, unique("nope"), unique("users"), "g")
    result = invoke("plan", "--workspace", str(tmp_path / "ws"), "--profile", str(missing))
    assert result.exit_code == 2 and "does not exist on" in result.output
    down = f"127.0.0.1:{free_port()}"
    (tmp_path / "down").mkdir()
    result, _ = ingest(tmp_path / "ws", profile(tmp_path / "down", down, "t", "u", "g"))
    assert result.exit_code == 2
    assert f"Kafka broker unreachable at {down}" in result.output


def test_users_from_a_file_instead_of_a_topic(kafka_broker: str, topics: dict,  # noqa: F811
                                              tmp_path: Path) -> None:
    users, _ = generate(GeneratorConfig(users=USERS, days=DAYS))
    (tmp_path / "files").mkdir()
    users.to_csv(tmp_path / "files" / "users.csv", index=False)
    path = tmp_path / "files" / "kafka.yaml"
    path.write_text(
        "name: kafka-file\nextends: v1\nstages:\n  ingest:\n    backend: kafka\n"
        f"    options: {{topic: {topics['topic']}, users_file: users.csv, "
        f"group: {unique('file')}, bootstrap: '{kafka_broker}'}}\n")
    result, row = ingest(tmp_path / "files", path)
    assert result.exit_code == 0, result.output
    assert row["summary"]["users_rows"] == len(users) and "users.csv" in row["external"]
    both = tmp_path / "files" / "both.yaml"
    both.write_text(path.read_text().replace("users_file:", "users_topic: u, users_file:"))
    result, _ = ingest(tmp_path / "files", both)
    assert result.exit_code == 2 and "users_topic or users_file, not both" in result.output
