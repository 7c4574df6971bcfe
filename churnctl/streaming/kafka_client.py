"""confluent-kafka clients the way churnctl uses them: a bounded wait for the broker, one line
naming the bootstrap servers when it is unreachable, topics that must exist, true end offsets.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from churnctl.errors import UserError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BOOTSTRAP_ENV = "CHURNCTL_KAFKA_BOOTSTRAP"
EVENTS_TOPIC = "churn-events"
SCORES_TOPIC = "churn-scores"
DEAD_LETTER_TOPIC = "churn-events-dlq"
CONNECT_SECONDS = 10.0  # the bounded wait for the broker before "unreachable"

_quiet = logging.getLogger("churnctl.kafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # librdkafka's reconnect chatter is not for the user's terminal


def bootstrap_servers(given: str | None) -> str:
    """--bootstrap, else CHURNCTL_KAFKA_BOOTSTRAP, else 127.0.0.1:9092."""
    return given or os.environ.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "logger": _quiet,
            "socket.connection.setup.timeout.ms": 3000, **extra}


def admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(bootstrap))


def topic_partitions(bootstrap: str, topic: str, timeout: float = CONNECT_SECONDS) -> list[int]:
    """The partitions of `topic`; UserError when the broker is unreachable or the topic is
    missing. Listing all topics (not asking for one) never auto-creates it."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    client = admin(bootstrap)
    while True:
        try:
            metadata = client.list_topics(timeout=max(0.5, deadline - time.monotonic()))
            break
        except KafkaException:
            if time.monotonic() >= deadline:
                raise UserError(f"Kafka broker unreachable at {bootstrap} (waited {timeout:g} s); "
                                "start it, or point CHURNCTL_KAFKA_BOOTSTRAP (`stream` commands: "
                                "--bootstrap; a profile: ingest.bootstrap) at HOST:PORT") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        known = ", ".join(sorted(t for t in metadata.topics if not t.startswith("__"))) or "none"
        raise UserError(f"Kafka topic {topic!r} does not exist on {bootstrap} (topics: "
                        f"{known}); create it or produce to it with "
                        f"`churnctl stream produce --topic {topic}`")
    return sorted(found.partitions)


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create `topic` unless it exists (the output and dead-letter topics churnctl writes)."""
    from confluent_kafka.admin import NewTopic

    try:
        topic_partitions(bootstrap, topic)
        return
    except UserError as exc:
        if "unreachable" in str(exc):
            raise
    client = admin(bootstrap)  # referenced until the futures resolve: GC destroys the handle
    futures = client.create_topics([NewTopic(topic, partitions, 1)])
    for future in futures.values():
        try:
            future.result(timeout=CONNECT_SECONDS)
        except Exception as exc:  # created meanwhile by another process: fine
            if "already exists" not in str(exc).lower():
                raise UserError(f"cannot create Kafka topic {topic!r} on {bootstrap}: "
                                f"{exc}") from None


def end_offsets(consumer: Any, topic: str, partitions: list[int]) -> dict[int, int]:
    """The offset after the last record of each partition, as it is now.

    Tansu (the broker on this machine) reports a high watermark one past the *base* offset of
    the last record batch, not past its last record. The last record is found by reading from
    that watermark minus one up to a record at or past it, until the watermark stops moving;
    with Apache Kafka that read returns the single last record and the same answer.
    """
    from confluent_kafka import TopicPartition

    ends: dict[int, int] = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                   timeout=CONNECT_SECONDS, cached=False)
        ends[partition] = max(high, low)
    probe = {p: h for p, h in ends.items() if h > 0}
    if not probe:
        return ends
    consumer.assign([TopicPartition(topic, p, h - 1) for p, h in probe.items()])
    last = {p: h - 1 for p, h in probe.items()}
    waiting = set(probe)
    deadline = time.monotonic() + CONNECT_SECONDS
    quiet_until = None
    while time.monotonic() < deadline:
        batch = consumer.consume(10_000, 0.2)
        records = [m for m in batch if m.error() is None]
        for message in records:
            last[message.partition()] = max(last[message.partition()], message.offset())
            waiting.discard(message.partition())
        if waiting:
            continue
        if records:
            quiet_until = None
        elif quiet_until is None:
            quiet_until = time.monotonic() + 0.2
        elif time.monotonic() >= quiet_until:
            break
    consumer.unassign()
    return {p: (last[p] + 1 if p in last else ends[p]) for p in ends}


def committed_offsets(consumer: Any, topic: str, partitions: list[int]) -> dict[int, int]:
    """The group's committed offset per partition; the low watermark where it has none."""
    from confluent_kafka import TopicPartition

    found = consumer.committed([TopicPartition(topic, p) for p in partitions],
                               timeout=CONNECT_SECONDS)
    offsets = {}
    for tp in found:
        if tp.offset >= 0:
            offsets[tp.partition] = tp.offset
        else:
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                    timeout=CONNECT_SECONDS, cached=False)
            offsets[tp.partition] = low
    return offsets
