"""v3 end to end with features.feast on a real Redis: `churnctl run --profile v3` (DVC, GX,
MLflow), then the v3 API answers /predict by user_id from the Redis online store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.runs import latest_artifact
from churnctl.workspace import Workspace
from tests.conftest import SMALL
from tests.redis_service import redis_server  # noqa: F401  (a session fixture)

pytest.importorskip("feast")
pytestmark = pytest.mark.slow


def test_v3_runs_and_serves_from_the_redis_online_store(
        tmp_path: Path, redis_server: str) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from churnctl.cli.serve import _serve_backend
    from churnctl.feast_store.online import OnlineFeatures
    from churnctl.serving.app import create_app

    result = CliRunner().invoke(cli_app, [
        "run", "--json", "--workspace", str(tmp_path), "--profile", "v3", *SMALL,
        "--set", "features.online_store=redis",
        "--set", f"features.redis_connection={redis_server}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stages = {row["name"]: row for row in json.loads(result.stdout)["stages"]}
    assert stages["features"]["backend"] == "feast" and stages["features"]["status"] == "ran"
    ws = Workspace(tmp_path)
    _, options = _serve_backend("v3", ws, {})
    app = create_app(ws, options)
    app.state.holder.refresh()
    client = TestClient(app)
    assert client.get("/ready").status_code == 200
    holder_features = app.state.holder.features
    assert isinstance(holder_features, OnlineFeatures) and holder_features.where == "redis"
    latest = pd.read_parquet(latest_artifact(ws, "features").table("latest"))
    user = int(latest["user_id"][0])
    answer = client.post("/predict", json={"user_id": user})
    assert answer.status_code == 200, answer.text
    assert answer.json()["as_of"].startswith("2025-04-10") and answer.json()["user_id"] == user
    assert client.post("/predict", json={"user_id": 10**9}).status_code == 404
