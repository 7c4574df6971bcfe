"""What ingest.kafka does on the broker: plan the range, read it, read the users, commit."""

from __future__ import annotations

import json
import time
from typing import Any

from churnctl.errors import DataError, UserError
from churnctl.streaming.events import MalformedEvent, decode_event
from churnctl.streaming.kafka_client import (
    bootstrap_servers,
    client_config,
    committed_offsets,
    end_offsets,
    topic_partitions,
)
from churnctl.streaming.topic_range import TopicRange, plan_range, previous_range
from churnctl.workspace import Workspace

USERS_TOPIC = "churn-users"


def users_topic(options: Any) -> str | None:
    return None if options.users_file else (options.users_topic or USERS_TOPIC)


def _consumer(bootstrap: str, group: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(client_config(bootstrap, **{
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False, "enable.partition.eof": False}))


def _latest_ingest_dir(workspace: Workspace) -> Any:
    from churnctl.cache_key import LATEST

    latest = workspace.artifacts / "ingest" / LATEST
    if not latest.is_file():
        return None
    return workspace.artifact_dir("ingest", latest.read_text().strip())


def plan_events(options: Any, workspace: Workspace) -> TopicRange:
    """The range this ingest reads and the range its artifact will cover."""
    bootstrap = bootstrap_servers(options.bootstrap)
    partitions = topic_partitions(bootstrap, options.topic)
    consumer = _consumer(bootstrap, options.group)
    try:
        committed = committed_offsets(consumer, options.topic, partitions)
        ends = end_offsets(consumer, options.topic, partitions)
    finally:
        consumer.close()
    latest = _latest_ingest_dir(workspace)
    return plan_range(options.topic, committed, ends, previous_range(latest, options.topic),
                      str(latest) if latest is not None else None)


def users_range(options: Any) -> TopicRange:
    """The whole users topic (its end offsets are its cache key's part)."""
    bootstrap = bootstrap_servers(options.bootstrap)
    topic = users_topic(options)
    assert topic is not None
    partitions = topic_partitions(bootstrap, topic)
    consumer = _consumer(bootstrap, options.group)
    try:
        ends = end_offsets(consumer, topic, partitions)
    finally:
        consumer.close()
    return TopicRange(topic, {p: 0 for p in ends}, ends, {p: 0 for p in ends})


def _read(bootstrap: str, group: str, topic: str, start: dict[int, int], stop: dict[int, int],
          timeout: float) -> list[Any]:
    """Every record of [start, stop) per partition, in partition order."""
    from confluent_kafka import TopicPartition

    todo = {p for p in stop if stop[p] > start[p]}
    if not todo:
        return []
    consumer = _consumer(bootstrap, group)
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(todo)])
        idle_until = time.monotonic() + timeout
        while todo:
            batch = consumer.consume(10_000, 0.5)
            if not batch and time.monotonic() > idle_until:
                left = ", ".join(f"partition {p} at {stop[p]}" for p in sorted(todo))
                raise UserError(f"reading {topic!r} on {bootstrap} stalled before the end seen at "
                                f"start ({left}) for {timeout:g} s; check the broker")
            if batch:
                idle_until = time.monotonic() + timeout
            for message in batch:
                if message.error() is not None:
                    continue
                partition = message.partition()
                if partition in todo and message.offset() < stop[partition]:
                    records.append(message)
                if partition in todo and message.offset() >= stop[partition] - 1:
                    todo.discard(partition)
                    consumer.incremental_unassign([TopicPartition(topic, partition)])
    finally:
        consumer.close()
    return sorted(records, key=lambda m: (m.partition(), m.offset()))


def read_events(options: Any, planned: TopicRange) -> tuple[Any, dict[str, int]]:
    """The artifact's events: the previous artifact's (when chained) plus the new range,
    de-duplicated by event_id, in event_id order. A malformed record stops the ingest."""
    import pandas as pd

    from churnctl.domain.schema import EVENTS

    bootstrap = bootstrap_servers(options.bootstrap)
    records = _read(bootstrap, options.group, planned.topic, planned.read_from, planned.to,
                    options.timeout)
    rows, problems = [], []
    for message in records:
        try:
            rows.append(decode_event(message.value()))
        except MalformedEvent as exc:
            problems.append(f"topic {planned.topic!r} partition {message.partition()} offset "
                            f"{message.offset()}: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more malformed records)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0]}{more}; nothing was ingested or committed: fix the "
                        "producer (the event contract is in docs/v4.md), then run again")
    new = pd.DataFrame(rows, columns=[c.name for c in EVENTS])
    new = _typed(new)
    parts = [new]
    if planned.previous is not None:
        from pathlib import Path

        parts.insert(0, pd.read_parquet(Path(planned.previous) / "events.parquet"))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else new
    before = len(frame)
    frame = (frame.drop_duplicates("event_id", keep="first").sort_values("event_id", kind="stable")
             .reset_index(drop=True))
    return frame, {"events_rows": len(frame), "new_events": len(new),
                   "duplicates_dropped": before - len(frame)}


def _typed(frame: Any) -> Any:
    """The column types ingest.files gives the same events."""
    import pandas as pd

    return frame.astype({"event_id": "int64", "user_id": "int64", "event_type": "object",
                         "course_id": "Int64", "watch_minutes": "float64",
                         "quiz_score": "float64", "amount": "float64"}).assign(
        event_time=lambda f: pd.to_datetime(f["event_time"]).astype("datetime64[ns]"))


def read_users(options: Any, workspace: Workspace) -> Any:
    """Users from the users topic (newest record per user_id wins) or the users file."""
    import pandas as pd

    from churnctl.domain.schema import USERS
    from churnctl.domain.tables import conform, read_raw

    if options.users_file:
        path = workspace.root / options.users_file
        frame, _ = conform(read_raw(path), USERS, path)
        return frame
    planned = users_range(options)
    bootstrap = bootstrap_servers(options.bootstrap)
    latest: dict[str, dict[str, Any]] = {}
    for message in _read(bootstrap, options.group, planned.topic, planned.read_from, planned.to,
                         options.timeout):
        try:
            user = json.loads(message.value())
            latest[str(user["user_id"])] = user
        except (TypeError, ValueError, KeyError):
            raise DataError(f"topic {planned.topic!r} partition {message.partition()} offset "
                            f"{message.offset()}: not a users record (JSON with user_id); fix "
                            "the producer") from None
    if not latest:
        raise DataError(f"users topic {planned.topic!r} is empty; produce the users to it "
                        "(`churnctl stream produce --users-topic ...`) or set users_file")
    raw = pd.DataFrame(list(latest.values())).astype(str).replace({"None": ""})
    frame, _ = conform(raw, USERS, __import__("pathlib").Path(f"kafka:{planned.topic}"))
    return frame.sort_values("user_id", kind="stable").reset_index(drop=True)


def commit_offsets(options: Any, meta: dict[str, Any]) -> None:
    """Commit the artifact's end offsets for the group (idempotent: the same offsets again)."""
    from confluent_kafka import KafkaException, TopicPartition

    bootstrap = bootstrap_servers(options.bootstrap)
    consumer = _consumer(bootstrap, options.group)
    try:
        consumer.commit(offsets=[TopicPartition(meta["topic"], int(p), int(o))
                                 for p, o in meta["to"].items()], asynchronous=False)
    except KafkaException as exc:
        raise UserError(f"committing offsets of group {options.group!r} on {bootstrap} failed "
                        f"({exc}); the artifact is kept and the next run commits them") from None
    finally:
        consumer.close()
