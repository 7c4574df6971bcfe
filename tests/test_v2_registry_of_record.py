"""With tracking (v2), MLflow's `champion` alias is the production pointer of record: a fresh
workspace (a teammate's clone, a Kubeflow pod) compares against it instead of promoting as the
"first model", and a champion whose file differs from its recorded hash is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnctl.errors import UserError
from churnctl.profile import load_profile
from churnctl.runner import Runner
from churnctl.workspace import Workspace

pytestmark = pytest.mark.slow
SMALL = ["ingest.users=400", "ingest.days=100"]


def _run(workspace: Path, store: str, *overrides: str) -> dict:
    profile = load_profile("v2", [*SMALL, "orchestrator.backend=local",
                                  f"tracking.tracking_uri={store}", *overrides])
    return Runner(profile, Workspace(workspace), log=lambda _: None).execute()


def test_a_fresh_workspace_compares_against_the_shared_champion(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from churnctl.domain.model_registry import ModelRegistry
    from churnctl.tracking.mlflow_registry import CHAMPION, champion_version

    # MLFLOW_TRACKING_URI wins over the profile's store: an earlier test of this worker may
    # have left one set.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    (tmp_path / "shared").mkdir()
    first = _run(tmp_path / "a", store, "train.algorithms=[logistic_regression]")
    train = next(r for r in first["stages"] if r["name"] == "train")
    assert train["summary"]["decision"] == "first model: promoted"

    second = _run(tmp_path / "b", store, "train.algorithms=[logistic_regression]",
                  "train.seed=7", "train.promotion_margin=0.5")
    row = next(r for r in second["stages"] if r["name"] == "train")
    # Not "first model: promoted": the champion was pulled into b's registry and compared.
    assert "vs production v1" in row["summary"]["decision"]
    assert row["summary"]["promoted"] is False
    local = ModelRegistry(Workspace(tmp_path / "b").registry)
    assert local.production().decision.startswith("production from MLflow churn v1")
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert int(client.get_model_version_by_alias("churn", CHAMPION).version) == 1

    # A lone train step (a Kubeflow pod: no profile, the server in MLFLOW_TRACKING_URI) on
    # b's features compares against the same champion instead of calling itself the first.
    from churnctl.orchestrators.stage_exec import run_stage

    features = next(r for r in second["stages"] if r["name"] == "features")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    step = run_stage(Workspace(tmp_path / "pod"), "train", "sklearn",
                     {"algorithms": ["logistic_regression"], "seed": 9},
                     {"features": tmp_path / "b" / features["artifact"]}, tmp_path / "pod-out",
                     log=lambda _: None)
    assert "vs production v1" in step["summary"]["decision"]

    # The cached download of the champion is edited: serving and the gate refuse it.
    cache = tmp_path / "serving-cache"
    _version, path = champion_version(store, "churn", cache_dir=cache)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="recorded at registration"):
        champion_version(store, "churn", cache_dir=cache)
