"""v2 tracking against a real `mlflow server` on 127.0.0.1: a run while the server is down
keeps everything locally and says so in one line; `tracking sync` logs it once the server is
up; runs then log straight to the server; serving's champion lookup follows the alias."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.domain.model_registry import ModelRegistry
from churnctl.workspace import Workspace
from tests.conftest import SMALL

pytestmark = pytest.mark.slow

V2 = ["--profile", "v2", *SMALL]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` (SQLite store, proxied artifacts), stopped by its PID."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        command = [str(Path(sys.executable).parent / "mlflow"), "server",
                   "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                   "--artifacts-destination", str(root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with self.log.open("w") as out:
            # Its own session, so stopping it also stops the workers it forks.
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"mlflow server not healthy after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Any:
    """Started at once, waited for by the test when it needs it (start-up takes ~20 s)."""
    root = tmp_path / "mlflow-server"
    root.mkdir()
    server = MlflowServer(root)
    yield server
    server.stop()


def _invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli_app, [*args, "--workspace", str(root)],
                              catch_exceptions=False)


def _record(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_server_down_then_sync_then_live_logging_and_champion_polling(
        mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from churnctl.domain.model import ChurnModel
    from churnctl.tracking.mlflow_registry import champion_version

    ws = tmp_path / "ws"
    down = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    result = _invoke(ws, "run", *V2, "--json")
    record = _record(result)
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0]
    assert "churnctl tracking sync" in warnings[0]
    assert record["status"] == "succeeded" and record["tracking"]["status"] == "pending"
    production = ModelRegistry(Workspace(ws).registry).production()
    assert production is not None and production.version == 1  # the model is not lost

    mlflow_server.wait_ready()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    synced = _invoke(ws, "tracking", "sync", "--profile", "v2", "--json")
    assert synced.exit_code == 0, synced.output
    [outcome] = json.loads(synced.stdout)
    assert outcome["run_id"] == record["run_id"] and outcome["status"] == "logged"
    saved = json.loads((ws / ".churnctl" / "runs" / f"{record['run_id']}.json").read_text())
    assert saved["tracking"]["status"] == "logged"
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    logged = client.get_run(outcome["tracker_run"])
    assert logged.data.tags["churnctl.run_id"] == record["run_id"]
    assert logged.data.metrics["roc_auc"] == pytest.approx(record["metrics"]["roc_auc"])

    version, model_file = champion_version(mlflow_server.url, "churn", cache_dir=tmp_path / "c")
    assert version == 1
    latest = ws / "data" / "features" / "latest.parquet"
    import pandas as pd

    scores = ChurnModel.load(model_file).predict_proba(pd.read_parquet(latest).head(20))
    assert ((scores >= 0) & (scores <= 1)).all()

    # A worse candidate, logged straight to the live server: rejected -> challenger.
    worse = _record(_invoke(ws, "run", *V2, "--json",
                            "--set", "train.algorithms=[logistic_regression]"))
    assert worse["tracking"]["status"] == "logged"
    assert worse["tracking"]["aliases"] == {"champion": 1, "challenger": 2}
    # Serving polls the alias: when it moves, the lookup returns the new version's file.
    client.set_registered_model_alias("churn", "champion", "2")
    moved, moved_file = champion_version(mlflow_server.url, "churn", cache_dir=tmp_path / "c")
    assert moved == 2 and moved_file != model_file and moved_file.exists()

    # Nothing changed since: the run does no stage work and logs nothing new.
    again = _record(_invoke(ws, "run", *V2, "--json", "--set",
                            "train.algorithms=[logistic_regression]"))
    assert {row["status"] for row in again["stages"]} == {"cached"}
    assert again["tracking"]["status"] == "skipped"
