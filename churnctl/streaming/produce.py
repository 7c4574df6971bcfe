"""`churnctl stream produce`: replay events (built-in or a file's) into a topic, keyed by
user_id, through an idempotent producer (the broker drops a retried duplicate)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnctl.errors import UserError
from churnctl.streaming.events import encode_event, json_value
from churnctl.streaming.kafka_client import client_config, ensure_topic

TABLE_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".pq")


@dataclass(frozen=True)
class BuiltinEvents:
    """The built-in synthetic data (domain/generator.py), deterministic from the seed."""

    users: int = 200
    days: int = 60
    seed: int = 42


def load_events(source: Path | BuiltinEvents) -> tuple[Any, Any]:
    """(events, users or None) ordered by event time; a file is checked like ingest.files."""
    if isinstance(source, BuiltinEvents):
        from churnctl.domain.generator import GeneratorConfig, generate

        users, events = generate(GeneratorConfig(users=source.users, days=source.days,
                                                 seed=source.seed))
    else:
        from churnctl.domain.schema import EVENTS
        from churnctl.domain.tables import conform, read_raw

        if source.suffix.lower() not in TABLE_SUFFIXES:
            raise UserError(f"--from {source}: unsupported file type {source.suffix!r}; give an "
                            "events table as .csv or .parquet")
        events, _ = conform(read_raw(source), EVENTS, source)
        users = None
    events = events.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    return events, users


def _records(frame: Any) -> Iterator[dict[str, Any]]:
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        yield dict(zip(columns, row, strict=True))


def produce(bootstrap: str, topic: str, events: Any, *, rate: float = 0.0,
            users: Any = None, users_topic: str | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Send every event (and user, to `users_topic`); `rate` events/s, 0 as fast as it goes."""
    from confluent_kafka import KafkaException, Producer

    ensure_topic(bootstrap, topic)
    if users_topic:
        ensure_topic(bootstrap, users_topic)
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(client_config(bootstrap, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 5,
        "message.timeout.ms": 30_000}))
    sent = {"events": 0, "users": 0}
    try:
        if users is not None and users_topic:
            for user in _records(users):
                body = {k: json_value(v) for k, v in user.items()}
                producer.produce(users_topic, key=str(body["user_id"]).encode(),
                                 value=json.dumps(body).encode(), on_delivery=delivered)
                sent["users"] += 1
                producer.poll(0)
        began = time.monotonic()
        for index, event in enumerate(_records(events)):
            if rate > 0 and index == 1:
                # Paced from the first acknowledged record: the producer's connection and
                # producer id take ~1 s, and the records queued meanwhile would reach the
                # broker as a burst, all of them late.
                producer.flush(30)
                began = time.monotonic() - 1 / rate
            if rate > 0:
                wait = began + index / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            key, value = encode_event(event)
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=delivered,
                                     headers={"produced_at_ns": str(time.time_ns())})
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.1)
            producer.poll(0)
            sent["events"] += 1
            if progress is not None and sent["events"] % 10_000 == 0:
                progress(sent["events"])
        remaining = producer.flush(30)
    except KafkaException as exc:
        raise UserError(f"producing to {topic!r} on {bootstrap} failed: {exc}") from None
    if remaining or failures:
        raise UserError(f"{remaining + len(failures)} record(s) to {topic!r} on {bootstrap} were "
                        f"not delivered ({failures[0] if failures else 'timed out'}); "
                        "check the broker and run again")
    return sent
