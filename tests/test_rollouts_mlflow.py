"""A model canary under MLflow (v4 serves from the registered model's aliases): the version a
canary pins is checked in MLflow before deploy, and `serve --model-version N` loads version N,
not the champion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnctl.cli.main import app
from tests.model_variants import register_shifted

pytestmark = pytest.mark.slow


def test_pinned_mlflow_version_is_checked_and_served(
    finished_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.serving.options import ServeOptions
    from churnctl.serving.sources import model_registry_for
    from churnctl.tracking.mlflow_registry import CHAMPION, SHA256_TAG, ensure_version
    from churnctl.workspace import Workspace

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(finished_workspace)  # MLflow defaults write to the working directory
    ws = Workspace(finished_workspace)
    assert register_shifted(finished_workspace) == 2
    registry = ModelRegistry(ws.registry)
    uri = "sqlite:///" + str(finished_workspace / ".churnctl" / "mlflow.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Both: mlflow.register_model uses the process-wide registry URI, which an earlier test in
    # this worker may have pointed at its own store.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for local in (1, 2):
        entry = registry.get(local)
        with mlflow.start_run():
            ensure_version(client, "churn", f"a{local}", registry.model_path(local), None,
                           {SHA256_TAG: entry.sha256})
    client.set_registered_model_alias("churn", CHAMPION, "1")

    options = ServeOptions(model_source="mlflow", mlflow_tracking_uri=uri, model_version=2)
    pinned = model_registry_for(ws, options)
    assert pinned.production().version == 2  # not the champion (1)
    shifted = pinned.load_model(2)
    original = registry.load_model(1)
    assert shifted.calibration != original.calibration

    # v4 itself serves the local registry (which follows MLflow's champion); this profile
    # serves from MLflow, so its canaries' versions are MLflow's.
    profile = finished_workspace / "mlflow-ab.yaml"
    profile.write_text(yaml.safe_dump({"name": "mlflow-ab", "extends": "v4", "stages": {
        "serve": {"backend": "fastapi-ab", "options": {
            "model_source": "mlflow", "variants": {"champion": 0.9, "challenger": 0.1}}}}}))
    runner = CliRunner()
    base = ["deploy", "--profile", str(profile), "--dry-run", "--workspace",
            str(finished_workspace)]
    missing = runner.invoke(app, [*base, "--model-version", "5"])
    assert missing.exit_code == 2
    assert "--model-version 5: registered model 'churn' has no version 5" in missing.output
    ok = runner.invoke(app, [*base, "--model-version", "2", "-o", "yaml"])
    assert ok.exit_code == 0, ok.output
    assert "- --model-version\n        - '2'" in ok.stdout

    # A/B under MLflow: the challenger variant is MLflow's alias, and `ab promote` moves
    # champion to it there (the local registry then follows the alias, as since v2).
    from churnctl.ab.aliases import promote_variant, variant_registry
    from churnctl.backends.serve_fastapi_ab import AbServeOptions

    client.set_registered_model_alias("churn", "challenger", "2")
    ab = AbServeOptions(model_source="mlflow", mlflow_tracking_uri=uri)
    assert variant_registry(ws, ab, "challenger").production().version == 2
    assert promote_variant(ws, ab, "challenger") == (2, 1)
    assert int(client.get_model_version_by_alias("churn", CHAMPION).version) == 2
