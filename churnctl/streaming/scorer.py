"""`churnctl stream score`: a consumer group that scores every event in real time.

Per batch: decode each event (a malformed one goes to the dead-letter topic with its reason
and source offset), update the user's online features (online_state.py), score the batch with
the production model (followed like `serve` does: a promotion is picked up between batches),
write one score per event to the output topic keyed by user_id, wait for the broker to have
them all, then commit the feature state with the offsets (SQLite) and the offsets (Kafka).

Delivery is at-least-once with an idempotent output: a scorer killed after writing a batch's
scores and before committing its offsets scores that batch again on restart, from the state
committed with those offsets, so the repeated records carry the same event_id, score and
model version, and de-duplicating by event_id leaves exactly one (docs/v4.md, "Streaming").
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from orjson import dumps

from churnctl.errors import UserError
from churnctl.streaming.events import MalformedEvent, decode_event
from churnctl.streaming.kafka_client import client_config, ensure_topic, topic_partitions
from churnctl.streaming.online_state import OnlineStore
from churnctl.streaming.stream_metrics import StreamMetrics


@dataclass
class ScoreOptions:
    bootstrap: str
    topic: str = "churn-events"
    output_topic: str = "churn-scores"
    dead_letter_topic: str = "churn-events-dlq"
    group: str = "churnctl-scorer"
    batch: int = 500
    # A batch closes at `batch` events or after this long: what a score waits at low rates.
    max_wait: float = 0.01
    unknown_users: Literal["default", "dead-letter"] = "default"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    reload_seconds: float = 5.0
    stop_when_idle: float = 0.0  # exit after this many seconds without events (0: never)
    session_timeout_ms: int = 6000
    # Commit (state with offsets, Kafka offsets, the Feast write) at most this often; 0: after
    # every batch. Scores still go out per batch; a crash repeats what was not committed.
    commit_interval: float = 0.0


class StreamScorer:
    def __init__(self, options: ScoreOptions, store: OnlineStore, holder: Any,
                 log: Any = print, sink: Any = None) -> None:
        self.options = options
        self.store = store
        self.holder = holder
        self.sink = sink  # the Feast online store, where the features backend made one
        self.log = log
        self.metrics = StreamMetrics()
        self.stopping = False
        self.totals = {"scored": 0, "dead_letter": 0, "batches": 0}
        self._failures: list[str] = []
        self._produced_at: list[bytes] = []  # the batch's events' produce times (headers)
        self._lag_checked = 0.0
        self._pending: dict[int, int] = {}  # partition -> next offset, scored not committed
        self._committed_at = time.monotonic()
        self._producer: Any = None
        self._broken = False  # an error left the loop: commit nothing more, even on revoke

    # -- setup -------------------------------------------------------------------------------
    def _clients(self) -> tuple[Any, Any]:
        from confluent_kafka import Consumer, Producer

        opts = self.options
        consumer = Consumer(client_config(opts.bootstrap, **{
            "group.id": opts.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False, "session.timeout.ms": opts.session_timeout_ms,
            "heartbeat.interval.ms": max(opts.session_timeout_ms // 3, 500),
            "max.poll.interval.ms": max(opts.session_timeout_ms * 10, 60_000),
            # A fetch returns after this long even when it brought less than a batch (the
            # default, 500 ms, was most of the latency at low rates); at high rates fetches
            # fill up before it and batches are full.
            "fetch.wait.max.ms": 10}))
        producer = Producer(client_config(opts.bootstrap, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 1,
            "message.timeout.ms": 30_000}))
        return consumer, producer

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # Resume each partition where the state committed with it ends: the offsets stored in
        # the SQLite transaction win over Kafka's (which may lag them by one crash).
        self.store.forget()
        stored = self.store.offsets(self.options.topic)
        for tp in partitions:
            if tp.partition in stored:
                tp.offset = stored[tp.partition]
        consumer.assign(partitions)
        self.log(f"assigned partitions {sorted(tp.partition for tp in partitions)}")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Hand over nothing pending: what was scored is committed before the partitions go.
        self._commit(consumer, self._producer)
        self.store.forget()

    def request_stop(self, *_args: Any) -> None:
        self.stopping = True

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, int]:
        opts = self.options
        topic_partitions(opts.bootstrap, opts.topic)  # unreachable or unknown: one line, exit 2
        ensure_topic(opts.bootstrap, opts.output_topic)
        ensure_topic(opts.bootstrap, opts.dead_letter_topic)
        if self.holder.current is None:
            raise UserError(self.holder.not_ready_reason())
        server = (self.metrics.serve(opts.metrics_host, opts.metrics_port)
                  if opts.metrics_port is not None else None)
        consumer, producer = self._clients()
        self._producer = producer
        # SIGTERM handling belongs to the process's main thread (a scorer run in a thread,
        # in a benchmark, is stopped by stop_when_idle or request_stop instead).
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self.request_stop) if in_main else None
        idle_since = time.monotonic()
        try:
            consumer.subscribe([opts.topic], on_assign=self._on_assign,
                               on_revoke=self._on_revoke)
            while not self.stopping:
                polled = consumer.consume(opts.batch, opts.max_wait)
                messages = [m for m in polled if m.error() is None]
                if not messages:
                    self._commit(consumer, producer)  # a pause: nothing waits for more
                    if opts.stop_when_idle and time.monotonic() - idle_since > opts.stop_when_idle:
                        break
                    self._update_lag(consumer)
                    continue
                idle_since = time.monotonic()
                self._batch(consumer, producer, messages)
                if time.monotonic() - self._committed_at >= opts.commit_interval:
                    self._commit(consumer, producer)
                self._update_lag(consumer)
            self._commit(consumer, producer)  # stopped: after the current batch, committed
        except BaseException:
            self._broken = True  # close() below revokes: pending batches stay uncommitted
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            consumer.close()  # leaves the group at once: a rebalance need not wait the timeout
            producer.flush(10)
            if server is not None:
                server.shutdown()
        return self.totals

    def _batch(self, consumer: Any, producer: Any, messages: list[Any]) -> None:
        began = time.monotonic()
        opts = self.options
        snapshot = self.holder.current  # one model version for the whole batch
        self.metrics.model_version.set(snapshot.version)
        good, events, dead = [], [], 0
        for message in messages:
            try:
                events.append(decode_event(message.value()))
            except MalformedEvent as exc:
                self._dead_letter(producer, message, str(exc), "malformed")
                dead += 1
                continue
            good.append(message)
        if events and opts.unknown_users == "dead-letter":
            known = self.store.known([e["user_id"] for e in events])
            if not known.all():
                for i in np.flatnonzero(~known).tolist():
                    self.metrics.errors.labels("unknown_user").inc()
                    self._dead_letter(producer, good[i],
                                      f"unknown user_id {events[i]['user_id']}", None)
                dead += int((~known).sum())
                good = [m for m, k in zip(good, known.tolist(), strict=True) if k]
                events = [e for e, k in zip(events, known.tolist(), strict=True) if k]
        if events:
            features = self.store.update(events)
            unknown = int((~features.known).sum())
            if unknown:
                self.metrics.errors.labels("unknown_user").inc(unknown)
            scores = snapshot.scorer.score_frame(features.frame(snapshot.model))
            self._scores_out(producer, good, events, scores.tolist(), snapshot.version)
            if self.sink is not None:  # written at the commit, before it
                self.sink.stage(events, features)
        for message in messages:
            partition, offset = message.partition(), message.offset() + 1
            if offset > self._pending.get(partition, 0):
                self._pending[partition] = offset
        self.totals["scored"] += len(good)
        self.totals["dead_letter"] += dead
        self.totals["batches"] += 1
        self.metrics.batch_done(len(good), dead, time.monotonic() - began)

    def _commit(self, consumer: Any, producer: Any) -> None:
        """Wait until the broker has every score (and Feast the features) of the batches
        since the last commit, then commit their state with their offsets (SQLite), then the
        offsets (Kafka). A crash before this point repeats those batches, identically."""
        from confluent_kafka import TopicPartition

        self._committed_at = time.monotonic()
        if not self._pending or self._broken:
            return
        self._wait_delivered(producer)
        if self.sink is not None:
            self.sink.flush()
        ends, self._pending = self._pending, {}
        self.store.commit(self.options.topic, ends)
        # The SQLite transaction above holds these offsets too, and wins on assignment, so
        # Kafka's copy need not hold up the next batch (a lost one only trails the store's).
        consumer.commit(offsets=[TopicPartition(self.options.topic, p, o)
                                 for p, o in ends.items()], asynchronous=True)

    def _scores_out(self, producer: Any, messages: list[Any], events: list[dict[str, Any]],
                    scores: list[float], version: int) -> None:
        out, delivered = self.options.output_topic, self._delivered
        produce, poll = producer.produce, producer.poll
        produced_at = self._produced_at
        for message, event, score in zip(messages, events, scores, strict=True):
            value = dumps({
                "event_id": event["event_id"], "user_id": event["user_id"],
                "event_time": event["event_time"].isoformat(), "score": round(score, 6),
                "model_version": version,
                "source": {"topic": message.topic(), "partition": message.partition(),
                           "offset": message.offset()}})
            for header, stamp in message.headers() or ():
                if header == "produced_at_ns":
                    produced_at.append(stamp)
            headers = {"event_id": str(event["event_id"])}
            try:
                produce(out, value, str(event["user_id"]).encode(), headers=headers,
                        on_delivery=delivered)
            except BufferError:  # the local queue is full: let deliveries drain it
                poll(0.05)
                self._produce(producer, out, str(event["user_id"]).encode(), value, headers,
                              delivered)
        poll(0)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def _dead_letter(self, producer: Any, message: Any, reason: str, kind: str | None) -> None:
        if kind:
            self.metrics.errors.labels(kind).inc()
        raw = message.value() or b""
        value = dumps({
            "reason": reason, "source": {"topic": message.topic(),
                                         "partition": message.partition(),
                                         "offset": message.offset()},
            "key": (message.key() or b"").decode("utf-8", "replace"),
            "value": raw[:10_000].decode("utf-8", "replace")})
        self._produce(producer, self.options.dead_letter_topic, message.key(), value,
                      {"reason": reason[:200]}, self._delivered)

    @staticmethod
    def _produce(producer: Any, topic: str, key: Any, value: bytes, headers: dict[str, str],
                 delivered: Any) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers,
                                 on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.05)

    def _wait_delivered(self, producer: Any) -> None:
        remaining = producer.flush(30)
        if remaining or self._failures:
            self.metrics.errors.labels("delivery").inc(remaining + len(self._failures))
            first = self._failures[0] if self._failures else "timed out"
            self._failures.clear()
            self._produced_at.clear()
            # Offsets stay uncommitted: the batch is scored again after a restart.
            raise UserError(f"writing scores to {self.options.output_topic!r} on "
                            f"{self.options.bootstrap} failed ({first}); nothing of this batch "
                            "was committed: restart the scorer when the broker is back")
        if self._produced_at:  # every score of the batch is on the broker now
            now = time.time_ns()
            observe = self.metrics.latency.observe
            for stamp in self._produced_at:
                observe(max(now - int(stamp), 0) / 1e9)
            self._produced_at.clear()

    def _update_lag(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._lag_checked < 1.0:
            return
        for tp in consumer.position(consumer.assignment()):
            # The watermark the last fetch brought back: asking the broker (cached=False)
            # takes ~0.4 s on Tansu and would stall the loop.
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            # Throttled only once a fetch has brought a watermark back: a scorer that catches
            # up within its first second still reports its lag (CI once read /metrics then).
            self._lag_checked = now
            # Tansu's watermark may trail the last batch's records (kafka_client.end_offsets).
            self.metrics.lag.labels(str(tp.partition)).set(max(high - max(tp.offset, 0), 0))


def store_path(workspace_state: Path, group: str) -> Path:
    return workspace_state / "stream" / f"{group}.sqlite"
