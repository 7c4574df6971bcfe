"""The real server: uvicorn in a child process on a free port of 127.0.0.1, stopped by PID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace
from tests.serving_demo import ServerProcess, make_demo_workspace, running_server

OPTIONS = {"max_batch": 50, "max_body_bytes": 64 * 1024, "reload_interval_seconds": 0.2}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_demo_workspace(tmp_path_factory.mktemp("served"), users=800)


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[ServerProcess]:
    with running_server(workspace, OPTIONS) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"content-type": "application/json"}) as http:
        yield http


@pytest.fixture(scope="module")
def snapshot(workspace: Workspace) -> pd.DataFrame:
    return pd.read_parquet(next(workspace.artifacts.glob("features/*/latest.parquet")))


def _model(workspace: Workspace, version: int) -> ChurnModel:
    return ChurnModel.load(ModelRegistry(workspace.registry).model_path(version))


def _features(snapshot: pd.DataFrame, row: int) -> dict[str, Any]:
    record = snapshot.drop(columns=["user_id", "as_of"]).iloc[row].to_dict()
    return {k: (v if isinstance(v, str) else float(v)) for k, v in record.items()}


def test_probes_model_and_metrics(client: httpx.Client, workspace: Workspace) -> None:
    assert client.get("/live").json() == {"status": "alive"}
    assert client.get("/ready").json() == {"status": "ready", "model_version": 1}
    info = client.get("/model").json()
    entry = ModelRegistry(workspace.registry).production()
    assert info["version"] == 1 and info["algorithm"] == "logistic"
    assert info["metrics"] == entry.metrics and info["trained_at"] == entry.created_at
    assert info["scorer"] == "linear"
    assert {f["name"] for f in info["feature_schema"]} >= {"events_30d", "plan", "country"}
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "churn_model_version 1.0" in metrics.text
    assert 'churn_http_requests_total{handler="/live",method="GET",status="200"}' in metrics.text
    assert "churn_http_request_duration_seconds_bucket" in metrics.text


def test_metrics_export_the_drift_gauges(client: httpx.Client, workspace: Workspace) -> None:
    drift = workspace.root / "reports" / "drift" / "latest.json"
    drift.parent.mkdir(parents=True, exist_ok=True)
    drift.write_text(json.dumps({"status": "warn", "timestamp": 1767225600,
                                 "features": [{"name": "plan", "psi": 0.12}]}))
    text = client.get("/metrics").text
    assert "churn_drift_status 1.0" in text
    assert 'churn_feature_psi{feature="plan"} 0.12' in text


def test_openapi_documents_the_feature_schema(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    features = spec["components"]["schemas"]["CustomerFeatures"]
    assert "events_30d" in features["required"] and features["additionalProperties"] is False
    assert features["properties"]["events_30d"]["type"] == "number"
    assert features["properties"]["plan"]["type"] == "string"
    batch = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["$ref"].endswith("/BatchPredictRequest")
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "404", "413", "422", "503"} <= set(responses)
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Prediction")


def test_predict_by_features_and_by_user_id(client: httpx.Client, workspace: Workspace,
                                            snapshot: pd.DataFrame) -> None:
    model = _model(workspace, 1)
    expected = model.predict_proba(snapshot)
    answer = client.post("/predict", json={"features": _features(snapshot, 3)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["churn_probability"] == pytest.approx(expected[3], abs=1e-9)
    assert body["churn_predicted"] == (expected[3] >= 0.5)
    assert body["model_version"] == 1 and body["user_id"] is None
    user = snapshot["user_id"].iloc[5]
    body = client.post("/predict", json={"user_id": user}).json()
    assert body["user_id"] == user and body["as_of"] == "2025-04-30"
    assert body["churn_probability"] == pytest.approx(expected[5], abs=1e-9)


def test_predict_batch(client: httpx.Client, workspace: Workspace,
                       snapshot: pd.DataFrame) -> None:
    expected = _model(workspace, 1).predict_proba(snapshot)
    customers = [{"features": _features(snapshot, i)} for i in range(10)]
    customers += [{"user_id": snapshot["user_id"].iloc[i]} for i in range(10, 40)]
    answer = client.post("/predict/batch", json={"customers": customers})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == 40 and body["model_version"] == 1
    got = [p["churn_probability"] for p in body["predictions"]]
    np.testing.assert_allclose(got, expected[:40], atol=1e-9)


def _bad_requests(snapshot: pd.DataFrame) -> list[tuple[str, str, dict[str, Any], int, str]]:
    good = _features(snapshot, 0)
    text = json.dumps({"features": good})
    user = snapshot["user_id"].iloc[0]
    return [
        ("malformed JSON", "/predict", {"content": b'{"features": {'}, 400, "malformed JSON"),
        ("empty body", "/predict", {"content": b""}, 400, "malformed JSON"),
        ("not an object", "/predict", {"content": b"[1, 2]"}, 422,
         "body: Input should be an object"),
        ("wrong type", "/predict", {"json": {"features": good | {"events_30d": "many"}}}, 422,
         "features.events_30d: Input should be a valid number"),
        ("boolean number", "/predict", {"json": {"features": good | {"is_paid": True}}}, 422,
         "features.is_paid: Input should be a valid number"),
        ("number as category", "/predict", {"json": {"features": good | {"plan": 1}}}, 422,
         "features.plan: Input should be a valid string"),
        ("missing field", "/predict",
         {"json": {"features": {k: v for k, v in good.items() if k != "country"}}}, 422,
         "features.country: Field required"),
        ("unknown field", "/predict", {"json": {"features": good | {"age": 3}}}, 422,
         "features.age: Extra inputs are not permitted"),
        ("NaN", "/predict", {"content": text.replace(
            f'"events_30d": {good["events_30d"]!r}', '"events_30d": NaN').encode()}, 422,
         "features.events_30d: Input should be a finite number"),
        ("infinity", "/predict", {"content": text.replace(
            f'"logins_7d": {good["logins_7d"]!r}', '"logins_7d": -Infinity').encode()}, 422,
         "features.logins_7d: Input should be a finite number"),
        ("overflow", "/predict", {"content": text.replace(
            f'"logins_7d": {good["logins_7d"]!r}', '"logins_7d": 1e999').encode()}, 422,
         "features.logins_7d: Input should be a finite number"),
        ("neither source", "/predict", {"json": {}}, 422, "exactly one of `features` or `user_id`"),
        ("both sources", "/predict", {"json": {"user_id": user, "features": good}}, 422,
         "exactly one"),
        ("unknown user", "/predict", {"json": {"user_id": "nobody-42"}}, 404,
         "unknown user_id 'nobody-42'"),
        ("batch over the limit", "/predict/batch",
         {"json": {"customers": [{"user_id": user}] * 51}}, 413,
         "batch has 51 customers; the limit is 50"),
        ("bad item in a batch", "/predict/batch",
         {"json": {"customers": [{"user_id": user}, {"features": good | {"plan": None}}]}}, 422,
         "customers.1.features.plan: Input should be a valid string"),
        ("unknown users in a batch", "/predict/batch",
         {"json": {"customers": [{"user_id": "ghost-1"}, {"user_id": user},
                                 {"user_id": "ghost-2"}]}}, 404, "'ghost-1', 'ghost-2'"),
        ("malformed batch", "/predict/batch", {"content": b'{"customers": [}'}, 400,
         "malformed JSON"),
        ("huge body", "/predict", {"content": b" " * (8 * 1024 * 1024)}, 413,
         "the limit is 65536 bytes"),
        ("huge chunked body", "/predict/batch",
         {"content": (b"x" * 16384 for _ in range(64))}, 413, "exceeds the limit of 65536 bytes"),
    ]


def test_bad_input_is_named_and_the_server_keeps_serving(
        client: httpx.Client, server: ServerProcess, snapshot: pd.DataFrame) -> None:
    for name, path, kwargs, status, says in _bad_requests(snapshot):
        answer = client.post(path, **kwargs)
        assert answer.status_code == status, (name, answer.text)
        assert says in answer.json()["message"], (name, answer.text)
    assert server.process.poll() is None
    assert client.get("/live").status_code == 200
    assert client.post("/predict", json={"features": _features(snapshot, 1)}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'churn_http_requests_total{handler="/predict",method="POST",status="422"}' in metrics
    assert 'handler="/predict",method="POST",status="500"' not in metrics
