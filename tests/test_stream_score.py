"""`churnctl stream score` against a real Tansu broker: a scorer SIGKILLed mid-stream and
restarted leaves exactly one score per event after de-duplication by event_id (and the repeats
are identical), two scorers in one group through rebalances, the dead-letter topic, /metrics,
SIGTERM, and bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.generator import GeneratorConfig, generate
from tests.kafka_broker import ENV, kafka_broker, read_topic, unique  # noqa: F401
from tests.redis_service import free_port

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.slow


def produce(bootstrap: str, topic: str, users: int, days: int, rate: float = 0) -> int:
    result = CliRunner().invoke(app, ["stream", "produce", "--bootstrap", bootstrap, "--topic",
                                      topic, "--users", str(users), "--days", str(days),
                                      "--rate", str(rate)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return len(generate(GeneratorConfig(users=users, days=days))[1])


def scorer(workspace: Path, bootstrap: str, names: dict, log: Path, *extra: str
           ) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "churnctl", "stream", "score", "--workspace",
               str(workspace), "--bootstrap", bootstrap, "--topic", names["topic"],
               "--output-topic", names["out"], "--dead-letter-topic", names["dlq"], "--group",
               names["group"], "--batch", "100", "--session-timeout-ms", "2000", *extra]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=ENV)


def wait_for(bootstrap: str, topic: str, wanted: int, timeout: float = 120,
             process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> list:
    """The output records once their distinct event_ids reach `wanted` (or at the timeout)."""
    from churnctl.errors import UserError

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"scorer exited {process.returncode}: "
                                 f"{log.read_text()[-2000:] if log else ''}")
        try:
            records = read_topic(bootstrap, topic, 10**9, timeout=2)
        except UserError:  # the scorer has not created the output topic yet
            records = []
        ids = {json.loads(m.value())["event_id"] for m in records}
        if len(ids) >= wanted or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def by_event(records: list) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for message in records:
        value = json.loads(message.value())
        assert message.key() == str(value["user_id"]).encode()  # keyed by user_id
        grouped[value["event_id"]].append(value)
    return grouped


def assert_exactly_one_after_dedup(records: list, expected_ids: set[int]) -> dict:
    grouped = by_event(records)
    assert set(grouped) == expected_ids  # none missing, none invented
    for copies in grouped.values():
        assert all(copy == copies[0] for copy in copies)  # an idempotent output: same record
    return grouped


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()[-2000:]


@pytest.fixture
def names() -> dict:
    return {"topic": unique("events"), "out": unique("scores"), "dlq": unique("dlq"),
            "group": unique("scorer")}


def test_sigkill_mid_stream_then_restart_scores_every_event_once(
        kafka_broker: str, finished_workspace: Path, names: dict,  # noqa: F811
        tmp_path: Path) -> None:
    from confluent_kafka import Producer

    from churnctl.streaming.kafka_client import client_config, ensure_topic

    ensure_topic(kafka_broker, names["topic"])
    bad = Producer(client_config(kafka_broker))
    bad.produce(names["topic"], key=b"7", value=b'{"event_id": 1, "user_id": 7}')
    bad.flush(10)
    total = len(generate(GeneratorConfig(users=100, days=60))[1])
    log = tmp_path / "scorer.log"
    first = scorer(finished_workspace, kafka_broker, names, log)
    # Paced (~11 s of events) from when the scorer has its partitions: it keeps up with any
    # burst, so a kill lands mid-stream only while events are still arriving.
    feeder = threading.Thread(target=produce, args=(kafka_broker, names["topic"], 100, 60,
                                                    500))
    try:
        deadline = time.monotonic() + 60
        while "assigned partitions" not in log.read_text() and time.monotonic() < deadline:
            assert first.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        feeder.start()
        records = wait_for(kafka_broker, names["out"], total // 4, process=first, log=log)
        assert len(by_event(records)) < total, "the kill must land mid-stream"
    finally:
        first.kill()  # SIGKILL: no chance to commit anything
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    feeder.join(timeout=120)
    port = free_port()
    second = scorer(finished_workspace, kafka_broker, names, log, "--metrics-port", str(port))
    try:
        records = wait_for(kafka_broker, names["out"], total, process=second, log=log)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        stop(second, log)
    _, events = generate(GeneratorConfig(users=100, days=60))
    grouped = assert_exactly_one_after_dedup(records, set(events["event_id"]))
    one = next(iter(grouped.values()))[0]
    assert 0 <= one["score"] <= 1 and one["model_version"] >= 1
    assert one["source"]["topic"] == names["topic"] and one["source"]["offset"] >= 0
    text = metrics.decode()
    assert 'churn_stream_events_total{outcome="scored"}' in text
    assert "churn_stream_consumer_lag{partition=" in text
    assert "churn_stream_events_per_second" in text
    assert 'churn_stream_errors_total{kind="malformed"}' in text
    dead = [json.loads(m.value()) for m in read_topic(kafka_broker, names["dlq"], 1)]
    assert dead and "missing field(s)" in dead[0]["reason"]
    assert dead[0]["source"]["topic"] == names["topic"] and dead[0]["source"]["offset"] >= 0


def test_two_scorers_in_one_group_through_rebalances(
        kafka_broker: str, finished_workspace: Path, names: dict,  # noqa: F811
        tmp_path: Path) -> None:
    users, days = 60, 50
    total = len(generate(GeneratorConfig(users=users, days=days))[1])
    from churnctl.streaming.kafka_client import ensure_topic

    ensure_topic(kafka_broker, names["topic"])
    feeder = threading.Thread(target=produce, args=(kafka_broker, names["topic"], users, days,
                                                    400))
    feeder.start()  # ~8 s of events while the group changes
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    # Commits every 500 ms: a leaving or losing scorer commits what it scored on revoke.
    a = scorer(finished_workspace, kafka_broker, names, log_a, "--commit-interval-ms", "500")
    b = None
    try:
        wait_for(kafka_broker, names["out"], 300, process=a, log=log_a)
        b = scorer(finished_workspace, kafka_broker, names, log_b,  # joins: a rebalance
                   "--commit-interval-ms", "500")
        deadline = time.monotonic() + 60
        while "assigned partitions" not in log_b.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # both score for a while
        stop(a, log_a)  # leaves: its partitions move to b
        feeder.join(timeout=120)
        records = wait_for(kafka_broker, names["out"], total)
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    if b is not None and b.returncode is None:
        stop(b, log_b)
    assert "assigned partitions" in log_b.read_text()
    assert log_a.read_text().count("assigned partitions") >= 2  # b's joining moved partitions
    _, events = generate(GeneratorConfig(users=users, days=days))
    assert_exactly_one_after_dedup(records, set(events["event_id"]))


def test_unknown_users_to_the_dead_letter_topic(kafka_broker: str,  # noqa: F811
                                                finished_workspace: Path, names: dict,
                                                tmp_path: Path) -> None:
    import pandas as pd

    _, events = generate(GeneratorConfig(users=3, days=50))
    events = events.head(20).assign(user_id=999_999)  # no users row
    events.to_parquet(tmp_path / "unknown.parquet", index=False)
    result = CliRunner().invoke(app, ["stream", "produce", "--bootstrap", kafka_broker,
                                      "--topic", names["topic"], "--from",
                                      str(tmp_path / "unknown.parquet")])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [
        "stream", "score", "--workspace", str(finished_workspace), "--bootstrap", kafka_broker,
        "--topic", names["topic"], "--output-topic", names["out"], "--dead-letter-topic",
        names["dlq"], "--group", names["group"], "--unknown-users", "dead-letter",
        "--session-timeout-ms", "2000", "--stop-when-idle", "3", "--json"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dead_letter"] == 20
    dead = [json.loads(m.value()) for m in read_topic(kafka_broker, names["dlq"], 20)]
    assert {d["reason"] for d in dead} == {"unknown user_id 999999"}
    assert sorted(d["source"]["offset"] for d in dead) == sorted(
        {d["source"]["offset"] for d in dead})
    assert isinstance(pd.DataFrame(dead), pd.DataFrame)


def test_bad_input_lines(kafka_broker: str, finished_workspace: Path) -> None:  # noqa: F811
    down = f"127.0.0.1:{free_port()}"
    for args, expected in [
        (["--bootstrap", down], f"Kafka broker unreachable at {down}"),
        (["--bootstrap", kafka_broker, "--topic", unique("missing")], "does not exist on"),
        (["--bootstrap", kafka_broker, "--unknown-users", "maybe"], "--unknown-users 'maybe'"),
    ]:
        result = CliRunner().invoke(app, ["stream", "score", "--workspace",
                                          str(finished_workspace), *args])
        assert result.exit_code == 2, result.output
        assert expected in result.output and len(result.output.strip().splitlines()) == 1


def test_crash_after_scores_before_commit_repeats_identical_records(
        kafka_broker: str, finished_workspace: Path, names: dict,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The window the guarantee is about, hit on purpose: a batch's scores are on the topic,
    its state and offsets are not committed. The restart repeats that batch, identically."""
    from churnctl.streaming.online_state import OnlineStore
    from churnctl.streaming.score_setup import model_holder, users_table
    from churnctl.streaming.scorer import ScoreOptions, StreamScorer, store_path
    from churnctl.workspace import Workspace

    total = produce(kafka_broker, names["topic"], 30, 50)
    workspace = Workspace(finished_workspace)
    options = ScoreOptions(bootstrap=kafka_broker, topic=names["topic"],
                           output_topic=names["out"], dead_letter_topic=names["dlq"],
                           group=names["group"], batch=100, session_timeout_ms=2000,
                           stop_when_idle=3)
    holder = model_holder(workspace, None, options.batch, 0)

    def crashing_commit(self: OnlineStore, topic: str, offsets: dict) -> None:
        if self.commits == 2:
            raise RuntimeError("power cut after the scores were written")
        self.commits += 1
        original(self, topic, offsets)

    original = OnlineStore.commit
    first = OnlineStore(store_path(workspace.state, options.group))
    first.load_users(users_table(workspace, None))
    first.commits = 0  # type: ignore[attr-defined]
    with monkeypatch.context() as patched:
        patched.setattr(OnlineStore, "commit", crashing_commit)
        with pytest.raises(RuntimeError, match="power cut"):
            StreamScorer(options, first, holder, log=lambda _: None).run()
    first.close()
    written = by_event(read_topic(kafka_broker, names["out"], 300, timeout=5))
    assert 0 < len(written) <= 300  # three batches out (up to 100 each), two committed
    second = OnlineStore(store_path(workspace.state, options.group))
    StreamScorer(options, second, holder, log=lambda _: None).run()
    second.close()
    holder.stop()
    records = read_topic(kafka_broker, names["out"], total + 100)
    _, events = generate(GeneratorConfig(users=30, days=50))
    grouped = assert_exactly_one_after_dedup(records, set(events["event_id"]))
    repeated = sum(len(copies) > 1 for copies in grouped.values())
    assert 0 < repeated <= 100  # the third batch, once more


def test_uncommitted_batches_of_a_commit_interval_repeat_identically(
        kafka_broker: str, finished_workspace: Path, names: dict,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With --commit-interval-ms, several batches are scored before one commit; a delivery
    failure at that commit commits none of them (not even when closing the consumer revokes
    its partitions), and the restart repeats them all, identically, and loses none."""
    from churnctl.streaming.online_state import OnlineStore
    from churnctl.streaming.score_setup import model_holder, users_table
    from churnctl.streaming.scorer import ScoreOptions, StreamScorer, store_path
    from churnctl.workspace import Workspace

    total = produce(kafka_broker, names["topic"], 30, 50)
    workspace = Workspace(finished_workspace)
    options = ScoreOptions(bootstrap=kafka_broker, topic=names["topic"],
                           output_topic=names["out"], dead_letter_topic=names["dlq"],
                           group=names["group"], batch=100, session_timeout_ms=2000,
                           stop_when_idle=3, commit_interval=3600)
    holder = model_holder(workspace, None, options.batch, 0)

    from churnctl.errors import UserError

    original = StreamScorer._wait_delivered
    failed: list[bool] = []

    def failing_once(self: StreamScorer, producer: object) -> None:
        if not failed:  # the broker went away at the first commit, and came back
            failed.append(True)
            raise UserError("writing scores failed (broker gone)")
        original(self, producer)

    first = OnlineStore(store_path(workspace.state, options.group))
    first.load_users(users_table(workspace, None))
    scorer = StreamScorer(options, first, holder, log=lambda _: None)
    with monkeypatch.context() as patched:
        patched.setattr(StreamScorer, "_wait_delivered", failing_once)
        with pytest.raises(UserError, match="broker gone"):
            scorer.run()
    first.close()
    assert scorer.totals["batches"] > 1  # more than one batch waited for that commit
    written = set(by_event(read_topic(kafka_broker, names["out"], scorer.totals["scored"],
                                      timeout=5)))
    assert len(written) == scorer.totals["scored"]
    second = OnlineStore(store_path(workspace.state, options.group))
    assert second.offsets(names["topic"]) == {}  # nothing committed by the crashed scorer
    StreamScorer(options, second, holder, log=lambda _: None).run()
    assert second.offsets(names["topic"])  # the clean stop committed
    second.close()
    holder.stop()
    records = read_topic(kafka_broker, names["out"], 2 * total)
    _, events = generate(GeneratorConfig(users=30, days=50))
    grouped = assert_exactly_one_after_dedup(records, set(events["event_id"]))
    # Every batch the crashed scorer wrote, once more; the rest once.
    assert all(len(copies) == (2 if event_id in written else 1)
               for event_id, copies in grouped.items())


def test_lag_is_reported_as_soon_as_a_fetch_brings_a_watermark() -> None:
    """Before the first fetch the watermark is unknown (-1); the 1 s throttle must not start
    then, or a scorer that catches up within its first second never shows its lag."""
    from types import SimpleNamespace

    from churnctl.streaming.scorer import StreamScorer
    from churnctl.streaming.stream_metrics import StreamMetrics

    class Consumer:  # the two calls _update_lag makes, with a watermark after the 2nd fetch
        def __init__(self) -> None:
            self.fetches = 0

        def assignment(self) -> list:
            return [SimpleNamespace(partition=0, offset=40)]

        def position(self, partitions: list) -> list:
            return partitions

        def get_watermark_offsets(self, tp: object, cached: bool) -> tuple[int, int]:
            self.fetches += 1
            return (0, -1) if self.fetches == 1 else (0, 100)

    scorer = SimpleNamespace(metrics=StreamMetrics(), _lag_checked=0.0)
    consumer = Consumer()
    StreamScorer._update_lag(scorer, consumer)
    assert scorer.metrics.registry.get_sample_value(
        "churn_stream_consumer_lag", {"partition": "0"}) is None
    StreamScorer._update_lag(scorer, consumer)  # at once: no throttle before a watermark
    assert scorer.metrics.registry.get_sample_value(
        "churn_stream_consumer_lag", {"partition": "0"}) == 60
    StreamScorer._update_lag(scorer, consumer)  # now throttled for a second
    assert consumer.fetches == 2
