"""`churnctl stream produce` against a real Tansu broker; the event codec; bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from churnctl.streaming.events import MalformedEvent, decode_event, encode_event
from tests.kafka_broker import kafka_broker, read_topic, unique  # noqa: F401

pytest.importorskip("confluent_kafka")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_produce_builtin_events_keyed_by_user(kafka_broker: str) -> None:  # noqa: F811
    topic, users_topic = unique("events"), unique("users")
    result = invoke("stream", "produce", "--bootstrap", kafka_broker, "--topic", topic,
                    "--users", "20", "--days", "50", "--users-topic", users_topic, "--json")
    assert result.exit_code == 0, result.output
    users, events = generate(GeneratorConfig(users=20, days=50))
    assert json.loads(result.stdout)["events"] == len(events)
    records = read_topic(kafka_broker, topic, len(events))
    assert len(records) == len(events)
    decoded = [decode_event(m.value()) for m in records]
    assert sorted(e["event_id"] for e in decoded) == sorted(events["event_id"].tolist())
    assert all(m.key() == str(e["user_id"]).encode() for m, e in zip(records, decoded,
                                                                     strict=True))
    # Keyed: all of one user's events land in one partition, in event-time order.
    by_user: dict[int, set[int]] = {}
    for message, event in zip(records, decoded, strict=True):
        by_user.setdefault(event["user_id"], set()).add(message.partition())
    assert all(len(parts) == 1 for parts in by_user.values())
    assert len(read_topic(kafka_broker, users_topic, len(users))) == len(users)


def test_produce_from_file_and_rate(kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    _, events = generate(GeneratorConfig(users=5, days=50, seed=3))
    events = events.head(40)
    events.to_csv(tmp_path / "events.csv", index=False)
    topic = unique("file")
    began = time.monotonic()
    result = invoke("stream", "produce", "--bootstrap", kafka_broker, "--topic", topic,
                    "--from", str(tmp_path / "events.csv"), "--rate", "200")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began >= 39 / 200  # paced, not a burst
    got = sorted(decode_event(m.value())["event_id"] for m in read_topic(kafka_broker, topic, 40))
    assert got == sorted(events["event_id"].tolist())


def test_malformed_from_file_is_one_line(kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "events.csv"
    bad.write_text("event_id,user_id,event_type\n1,2,login\n")
    result = invoke("stream", "produce", "--bootstrap", kafka_broker, "--from", str(bad))
    assert result.exit_code == 2
    assert "events.csv: missing column(s) event_time" in result.output
    assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "events.json").write_text("{}")
    result = invoke("stream", "produce", "--from", str(tmp_path / "events.json"))
    assert result.exit_code == 2 and "unsupported file type '.json'" in result.output


def test_unreachable_broker_names_bootstrap_and_exits_2() -> None:
    from tests.redis_service import free_port

    servers = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    result = invoke("stream", "produce", "--bootstrap", servers, "--users", "2", "--days", "50")
    assert result.exit_code == 2
    assert f"Kafka broker unreachable at {servers}" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert time.monotonic() - began < 30  # a bounded wait


events_strategy = st.fixed_dictionaries({
    "event_id": st.integers(1, 2**53), "user_id": st.integers(1, 2**31),
    "event_time": st.datetimes().map(lambda d: d.replace(microsecond=0)),
    "event_type": st.sampled_from(["login", "video_watch", "payment_failed"]),
    "course_id": st.one_of(st.none(), st.integers(1, 500)),
    "watch_minutes": st.floats(0, 1e4), "quiz_score": st.one_of(st.none(), st.floats(0, 100)),
    "amount": st.floats(0, 1e5)})


@given(events_strategy)
def test_codec_round_trips_valid_events(event: dict) -> None:
    key, value = encode_event(event)
    assert key == str(event["user_id"]).encode()
    assert decode_event(value) == event


@pytest.mark.parametrize(("value", "reason"), [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (json.dumps({"event_id": 1}).encode(), "missing field(s) user_id, event_time"),
    (json.dumps({"event_id": 1, "user_id": 1, "event_time": "2025-01-01T00:00:00",
                 "event_type": "dance", "course_id": None, "watch_minutes": 0,
                 "quiz_score": None, "amount": 0}).encode(), "'event_type' is 'dance'"),
    (json.dumps({"event_id": 1, "user_id": "x", "event_time": "2025-01-01T00:00:00",
                 "event_type": "login", "course_id": None, "watch_minutes": 0,
                 "quiz_score": None, "amount": 0}).encode(), "'user_id' is str"),
    (json.dumps({"event_id": 1, "user_id": 1, "event_time": "yesterday",
                 "event_type": "login", "course_id": None, "watch_minutes": -1,
                 "quiz_score": None, "amount": 0}).encode(), "'event_time' is 'yesterday'"),
])
def test_malformed_events_say_why(value: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=None) as caught:
        decode_event(value)
    assert reason in str(caught.value)
