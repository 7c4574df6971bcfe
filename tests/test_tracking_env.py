"""The MLflow tracker leaves the process's environment as it found it: mlflow's
set_tracking_uri/set_registry_uri export MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI, which
win over a profile's store, so a leftover would send the next run in the process (an upgrade
gate's scratch run, a notebook's second run) to this run's store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from churnctl.tracking.mlflow_tracker import MlflowTracker, MlflowTrackerOptions
from churnctl.workspace import Workspace


def test_the_tracker_puts_the_mlflow_uris_back(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////nowhere/the-users-registry.db")
    tracker = MlflowTracker()
    tracker.start(MlflowTrackerOptions(), Workspace(tmp_path).ensure(),
                  {"run_id": "r1", "profile": "v2", "stages": []})
    store = f"sqlite:///{(tmp_path / '.churnctl' / 'mlflow.db').resolve()}"
    assert os.environ["MLFLOW_TRACKING_URI"] == store  # for the run's own subprocesses
    tracker.abort()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:////nowhere/the-users-registry.db"
