"""`stream score` in a workspace whose features backend is Feast (features.feast; the SQLite
online store and a real Redis), against a real Tansu broker: an event streamed after the
batch features changes what `churnctl features get` and `/predict {"user_id"}` answer for its
user, to the features the batch pipeline computes for that day, and `/predict` gives the score
the stream wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.features import FeatureConfig, daily_activity, snapshots
from churnctl.domain.generator import GeneratorConfig, generate
from tests.conftest import SMALL
from tests.kafka_broker import kafka_broker, read_topic, unique  # noqa: F401
from tests.redis_service import redis_server  # noqa: F401  (a session fixture)

pytest.importorskip("feast")
pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.slow


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_a_streamed_event_reaches_the_feast_online_store_serve_reads(
        kafka_broker: str, tmp_path: Path, online: str,  # noqa: F811
        request: pytest.FixtureRequest) -> None:
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app
    from churnctl.workspace import Workspace

    root = tmp_path / "ws"
    store = ([] if online == "sqlite" else [
        "--set", "features.online_store=redis",
        "--set", f"features.redis_connection={request.getfixturevalue('redis_server')}"])
    invoke("run", "--json", "--workspace", str(root), "--profile", "v1", "--set",
           "features.backend=feast", *store, *SMALL)
    users, events = generate(GeneratorConfig(users=400, days=100))
    user = int(events["user_id"].value_counts().index[0])
    before = json.loads(invoke("features", "get", str(user), "--workspace", str(root),
                               "--json"))[0]
    last_day = events["event_time"].max().normalize()
    assert before["as_of"] == f"{last_day.date()}T00:00:00+00:00"
    when = last_day + pd.Timedelta(days=1, hours=9, minutes=30)  # the next day: new data
    extra = {"event_id": int(events["event_id"].max()) + 1, "user_id": user,
             "event_time": when, "event_type": "login", "course_id": None,
             "watch_minutes": 0.0, "quiz_score": None, "amount": 0.0}
    streamed = pd.concat([events, pd.DataFrame([extra]).astype(events.dtypes.to_dict())],
                         ignore_index=True)
    streamed.to_parquet(tmp_path / "events.parquet", index=False)
    topic, scores = unique("events"), unique("scores")
    invoke("stream", "produce", "--bootstrap", kafka_broker, "--topic", topic, "--from",
           str(tmp_path / "events.parquet"))
    totals = json.loads(invoke(
        "stream", "score", "--workspace", str(root), "--bootstrap", kafka_broker, "--topic",
        topic, "--output-topic", scores, "--dead-letter-topic", unique("dlq"), "--group",
        unique("scorer"), "--session-timeout-ms", "2000", "--stop-when-idle", "3", "--batch",
        "1000", "--json"))
    assert totals["scored"] == len(streamed)

    after = json.loads(invoke("features", "get", str(user), "--workspace", str(root),
                              "--json"))[0]
    assert after["as_of"] == f"{when.isoformat()}+00:00"  # the streamed event's time
    start = events["event_time"].min().normalize()
    expected = snapshots(daily_activity(users, streamed), users, [(when - start).days],
                         FeatureConfig(), with_labels=False).set_index("user_id").loc[user]
    for name, value in after.items():
        if name not in ("user_id", "as_of", "stale"):
            if isinstance(value, str):
                assert value == expected[name], name
            else:
                assert value == pytest.approx(float(expected[name]), rel=1e-5, abs=1e-4), name

    records = [json.loads(m.value()) for m in read_topic(kafka_broker, scores, len(streamed))]
    score = next(r["score"] for r in records if r["event_id"] == extra["event_id"])
    client = TestClient(create_app(Workspace(root), {"reload_interval_seconds": 0}))
    client.app.state.holder.refresh()
    answer = client.post("/predict", json={"user_id": user})
    assert answer.status_code == 200, answer.text
    assert answer.json()["as_of"].startswith(when.isoformat())
    assert answer.json()["churn_probability"] == pytest.approx(score, abs=2e-6)
    assert np.isfinite(score)
