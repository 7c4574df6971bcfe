"""Hot reload under load, readiness before any model, a broken model, and `churnctl serve`."""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace
from tests.serving_demo import (
    demo_features,
    make_demo_workspace,
    register_model,
    running_server,
    train_demo_model,
    write_features_artifact,
)

FAST_RELOAD = {"reload_interval_seconds": 0.1}


@dataclass
class Answer:
    sent: float
    received: float
    status: int
    version: int | None = None
    rows: list[int] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    error: str = ""


def _load(url: str, snapshot: pd.DataFrame, stop: threading.Event, out: list[Answer],
          seed: int) -> None:
    """Send a mix of single (by id, by features) and batch requests until told to stop."""
    rng = random.Random(seed)
    ids = snapshot["user_id"].tolist()
    features = snapshot.drop(columns=["user_id", "as_of"])
    deadline = time.monotonic() + 90  # bounded even if the test body fails to stop it
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(50_000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            kind = rng.choice(("id", "features", "batch"))
            rows = [rng.randrange(len(ids)) for _ in range(5 if kind == "batch" else 1)]
            if kind == "id":
                path, body = "/predict", {"user_id": ids[rows[0]]}
            elif kind == "features":
                record = features.iloc[rows[0]].to_dict()
                path, body = "/predict", {"features": {k: v if isinstance(v, str) else float(v)
                                                       for k, v in record.items()}}
            else:
                path, body = "/predict/batch", {"customers": [{"user_id": ids[r]} for r in rows]}
            sent = time.monotonic()
            try:
                answer = client.post(path, json=body)
            except httpx.HTTPError as exc:
                out.append(Answer(sent, time.monotonic(), 0, error=repr(exc)))
                continue
            got = Answer(sent, time.monotonic(), answer.status_code, rows=rows)
            data = answer.json()
            if answer.status_code == 200:
                items = data["predictions"] if kind == "batch" else [data]
                versions = {item["model_version"] for item in items}
                got.version = versions.pop() if len(versions) == 1 else -1  # -1: mixed batch
                got.probabilities = [item["churn_probability"] for item in items]
            else:
                got.error = answer.text
            out.append(got)


def _wait_for_version(client: httpx.Client, version: int, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/model")
        if answer.status_code == 200 and answer.json()["version"] == version:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"/model did not switch to v{version} within {timeout}s")


def test_hot_reload_under_load(tmp_path: Path) -> None:
    workspace = make_demo_workspace(tmp_path, users=600)
    snapshot = pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))
    candidate = train_demo_model(demo_features(600, seed=42), "hgb")
    registry = ModelRegistry(workspace.registry)
    answers: list[Answer] = []
    stop = threading.Event()
    with running_server(workspace, FAST_RELOAD) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        load = [threading.Thread(target=_load, args=(server.url, snapshot, stop, answers, seed))
                for seed in range(4)]
        for thread in load:
            thread.start()
        try:
            time.sleep(1.5)
            register_model(workspace, candidate)  # promotes v2 while requests are in flight
            on_v2 = _wait_for_version(client, 2)
            time.sleep(1.5)
            rollback = time.monotonic()
            registry.set_production(1)
            back_on_v1 = _wait_for_version(client, 1)
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in load:
                thread.join(timeout=60)
        metrics = client.get("/metrics").text
        info = client.get("/model").json()

    expected = {v: ChurnModel.load(registry.model_path(v)).predict_proba(snapshot) for v in (1, 2)}
    failed = [a for a in answers if a.status != 200]
    assert not failed, failed[:5]
    assert len(answers) > 200, f"only {len(answers)} requests during the test"
    assert {a.version for a in answers} == {1, 2}  # both served; no mixed batch (-1)
    for answer in answers:  # each answer is entirely one version's
        np.testing.assert_allclose(answer.probabilities, expected[answer.version][answer.rows],
                                   atol=1e-9)
    assert all(a.version == 2 for a in answers if on_v2 < a.sent and a.received < rollback)
    assert all(a.version == 1 for a in answers if a.sent > back_on_v1)
    assert sum(1 for a in answers if a.version == 2) > 20
    assert info["version"] == 1
    assert 'churn_model_reloads_total{result="ok"} 3.0' in metrics
    assert "churn_model_version 1.0" in metrics


def test_not_ready_until_a_model_appears_then_survives_a_broken_one(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    frame = demo_features(400, seed=5)
    with running_server(workspace, FAST_RELOAD, wait_for="/live") as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "no production model" in ready.json()["reason"]
        answer = client.post("/predict", json={"user_id": "u0000001"})
        assert answer.status_code == 503 and "no model loaded" in answer.json()["message"]
        assert client.get("/model").status_code == 503
        body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
        assert "no model is in the registry" in body["content"]["application/json"]["schema"][
            "description"]

        write_features_artifact(workspace, frame)
        register_model(workspace, train_demo_model(frame, "logistic"))
        server.wait("/ready", timeout=30)  # picked up without a restart
        first = client.post("/predict", json={"user_id": "u0000001"})
        assert first.json()["model_version"] == 1, first.text

        registry = ModelRegistry(workspace.registry)
        broken = register_model(workspace, train_demo_model(frame, "logistic", seed=3),
                                promote=False)
        registry.model_path(broken.version).write_bytes(b"not a model file")
        registry.set_production(broken.version)
        deadline = time.monotonic() + 30
        while 'churn_model_reloads_total{result="error"}' not in client.get("/metrics").text:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.05)
        assert client.get("/ready").status_code == 200  # still serving v1
        assert client.get("/model").json()["version"] == 1
        assert client.post("/predict", json={"user_id": "u0000002"}).status_code == 200
    assert f"loading model v{broken.version} failed" in server.log.read_text()


def test_serve_command_with_two_workers(tmp_path: Path) -> None:
    workspace = make_demo_workspace(tmp_path, users=300)
    command = [sys.executable, "-m", "churnctl", "serve", "--workspace", str(workspace.root),
               "--port", "{port}", "--workers", "2"]
    with running_server(workspace, command=command) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        # Each worker loads the model on its own; /ready answered by one says nothing about
        # the other, so wait until a run of answers (spread over both) is ready.
        deadline = time.monotonic() + 60
        streak = 0
        while streak < 10:
            assert time.monotonic() < deadline, "both workers never became ready"
            streak = streak + 1 if client.get("/ready").status_code == 200 else 0
        answers: list[dict[str, Any]] = [
            client.post("/predict", json={"user_id": f"u{i:07d}"}).json() for i in range(20)]
        assert all(a["model_version"] == 1 for a in answers)
        assert client.get("/ready").json()["model_version"] == 1
    assert server.process.returncode is not None
    assert "serving on http://127.0.0.1" in server.log.read_text()
