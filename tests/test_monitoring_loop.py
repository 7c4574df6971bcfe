"""The whole loop: drift detected -> retrain -> the gate decides -> the running API follows.

A real uvicorn process serves the workspace while `churnctl monitor drift --retrain` runs in
this process; a client thread keeps calling /model and /predict the whole time. Every request
must succeed, and the API must report the new version if (and only if) it was promoted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "httpx"))
        or importlib.util.find_spec("churnctl.serving.app") is None,
        reason="serving extras not installed (pip install 'churnctl[serve]' httpx)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`churnctl serve`'s uvicorn factory in a child process, stopped by its PID."""

    def __init__(self, workspace: Path, log: Path) -> None:
        from churnctl.backends.serve_fastapi import ServeOptions
        from churnctl.serving.server import FACTORY, config_env
        from churnctl.workspace import Workspace

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = ServeOptions(port=self.port, reload_interval_seconds=0.2)
        env = {**os.environ, **config_env(Workspace(workspace), options)}
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", FACTORY, "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, client: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "server exited; see its log"
            try:
                response = client.get(f"{self.url}/ready")
                if response.status_code == 200:
                    return response.json()
            except Exception:  # not listening yet
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Caller(threading.Thread):
    """Calls /model and /predict in a loop and records every answer."""

    def __init__(self, url: str, features: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.features = features
        self.stop_event = threading.Event()
        self.answers: list[tuple[str, int, int | None]] = []  # (path, status, model version)
        self.errors: list[str] = []

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=10) as client:
            while not self.stop_event.is_set():
                for path in ("/model", "/predict"):
                    try:
                        if path == "/model":
                            response = client.get(self.url + path)
                            version = response.json().get("version")
                        else:
                            response = client.post(self.url + path,
                                                   json={"features": self.features})
                            version = response.json().get("model_version")
                        self.answers.append((path, response.status_code, version))
                    except Exception as exc:  # a failed request is the finding
                        self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                time.sleep(0.05)

    def versions(self) -> list[int | None]:
        return [version for _, _, version in self.answers]


def features_row(workspace: Path) -> dict[str, Any]:
    import pandas as pd

    from churnctl.runs import latest_artifact
    from churnctl.workspace import Workspace

    artifact = latest_artifact(Workspace(workspace), "features")
    assert artifact is not None
    schema = artifact.meta("feature_schema")
    row = pd.read_parquet(artifact.table("latest")).iloc[0]
    values: dict[str, Any] = {n: float(row[n]) for n in schema["numeric"]}
    values.update({c: str(row[c]) for c in schema["categorical"]})
    return values


def test_drift_retrain_promotion_reaches_the_running_server(finished_workspace: Path,
                                                            tmp_path: Path) -> None:
    import httpx

    from churnctl.domain.generator import GeneratorConfig, generate, write_dataset

    drifted = tmp_path / "drifted"
    # Enough days that the embargoed split leaves the retraining a real training period.
    write_dataset(*generate(GeneratorConfig(users=1200, days=150, seed=7, drift=1.0)), drifted,
                  "parquet")
    server = Server(finished_workspace, tmp_path / "server.log")
    try:
        with httpx.Client(timeout=10) as client:
            assert server.wait_ready(client)["model_version"] == 1
        caller = Caller(server.url, features_row(finished_workspace))
        caller.start()
        result = CliRunner().invoke(
            cli_app, ["monitor", "drift", "--workspace", str(finished_workspace),
                            "--current", str(drifted), "--retrain", "--json",
                            # One algorithm keeps the retraining short; the gate is the same.
                            "--set", "train.algorithms=[logistic_regression]"],
            catch_exceptions=False)
        assert result.exit_code == 2, result.output  # drift detected
        retrain = json.loads(result.stdout)["retrain"]
        assert retrain["status"] == "succeeded" and retrain["model_version"] == 2
        # On this planted drift production v1 (trained on 400 users) scores far worse than a
        # model trained on the new data, beyond the bootstrap interval, so the gate promotes
        # (the rejected branch: test_monitoring_cli.py).
        assert retrain["promoted"], retrain["decision"]
        expected = 2
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and expected not in caller.versions()[-5:]:
            time.sleep(0.1)
        time.sleep(1.0)  # several more reload intervals: a rejected model must never appear
        caller.stop_event.set()
        caller.join(timeout=15)
        with httpx.Client(timeout=10) as client:
            model = client.get(f"{server.url}/model").json()
            metrics = client.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert caller.errors == [], log
    failed = [a for a in caller.answers if a[1] != 200]
    assert failed == [], f"failed requests during the switch: {failed[:5]}\n{log}"
    assert len(caller.answers) > 20
    versions = caller.versions()
    assert versions[0] == 1 and versions[-1] == expected and model["version"] == expected
    assert versions == sorted(versions)  # never back to an old model, never a mix
    assert f"churn_model_version {float(expected)}" in metrics
