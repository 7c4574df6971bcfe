"""v2 end to end with the real DVC and MLflow (SQLite store): run, no-op re-run, a changed
parameter, push/pull, and parity with v1 on the same data.

One v2 workspace is built per module and each test works on its own copy of it, so the
suite pays for one full v2 run (the machine has 2 cores and other suites run beside it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from churnctl.cli.main import app as cli_app
from churnctl.domain.model_registry import ModelRegistry
from churnctl.hashing import file_sha256
from churnctl.registry import backend_class
from churnctl.workspace import Workspace
from tests.conftest import SMALL

pytestmark = pytest.mark.slow

V2 = ["--profile", "v2", *SMALL]


def _invoke(root: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli_app, [*args, "--workspace", str(root)],
                                catch_exceptions=False)
    return result


def _record(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _statuses(record: dict[str, Any]) -> dict[str, str]:
    return {row["name"]: row["status"] for row in record["stages"]}


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A workspace after one small `run --profile v2`, and its record (do not mutate)."""
    root = tmp_path_factory.mktemp("v2_run")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        record = _record(_invoke(root, "run", *V2, "--json"))
    finally:
        mp.undo()
    return root, record


@pytest.fixture
def v2_copy(v2_run: tuple[Path, dict[str, Any]], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    target = tmp_path / "ws"
    shutil.copytree(v2_run[0], target, symlinks=True)
    # The SQLite store and the tracking state name the original path: point them here.
    for path in (target / ".churnctl" / "tracking").glob("*.json"):
        path.write_text(path.read_text().replace(str(v2_run[0]), str(target)))
    return target


def test_first_run_drives_dvc_and_records_every_stage(v2_run) -> None:
    root, record = v2_run
    assert record["profile"] == "v2" and record["orchestrator"] == "dvc"
    assert _statuses(record) == dict.fromkeys(("ingest", "validate", "features", "train"), "ran")
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert list(pipeline) == ["ingest", "validate", "features", "train"]
    assert "stage run features" in pipeline["features"]["cmd"]
    assert pipeline["features"]["outs"] == ["data/features"]
    assert pipeline["features"]["params"] == ["features"]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(pipeline)
    assert lock["train"]["params"]["params.yaml"]["train"]["promotion_margin"] == 0.0
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["ingest"]["users"] == 400 and params["ingest"]["backend"] == "shell"
    # Each exported output is a churnctl artifact whose files match its manifest hashes.
    for name in pipeline:
        manifest = json.loads((root / "data" / name / "manifest.json").read_text())
        for file, digest in manifest["files"].items():
            assert file_sha256(root / "data" / name / file) == digest
    assert (root / ".dvc").is_dir() and (root / ".dvc" / "config").read_text().count("churnctl")


def test_deps_are_the_code_and_params_the_cache_key_covers(v2_run) -> None:
    from churnctl.code_version import backend_code_version

    root, _ = v2_run
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert pipeline["train"]["deps"] == ["data/features"]
    # The code is covered as a param (the runner's code version), never by file paths.
    train = backend_code_version(backend_class("train", "sklearn"),
                                 Workspace(root).state / "cache")
    assert params["train"]["code_version"] == train.digest
    assert params["train"]["libraries"]["scikit-learn"] == train.distributions["scikit-learn"]
    assert list(params["ingest"]["input_files"]) == ["churnctl/backends/scripts/generate_data.sh"]


def test_mlflow_run_has_params_metrics_reports_and_registered_model(v2_run) -> None:
    from mlflow import MlflowClient

    root, record = v2_run
    tracking_ = record["tracking"]
    assert tracking_["status"] == "logged"
    uri = "sqlite:///" + str(root / ".churnctl" / "mlflow.db")
    assert tracking_["store"] == uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    logged = client.get_run(tracking_["tracker_run"])
    assert logged.data.params["ingest.users"] == "400"
    assert logged.data.metrics["pr_auc"] == pytest.approx(record["metrics"]["pr_auc"])
    reports = {a.path for a in client.list_artifacts(logged.info.run_id, "reports")}
    assert {"reports/validation.json", "reports/data.json", "reports/evaluation.json"} <= reports
    assert {i.dataset.name for i in logged.inputs.dataset_inputs} == {"features-train",
                                                                      "features-test"}
    champion = client.get_model_version_by_alias("churn", "champion")
    assert champion.tags["churnctl.local_version"] == "1"
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    info = mlflow.models.get_model_info(f"models:/churn/{champion.version}")
    assert info.signature is not None and "events_30d" in info.signature.inputs.input_names()
    assert info.saved_input_example_info is not None


def test_repeated_run_does_no_stage_work(v2_copy: Path) -> None:
    result = _invoke(v2_copy, "run", *V2, "--json")
    record = _record(result)
    assert set(_statuses(record).values()) == {"cached"}
    assert "Data and pipelines are up to date" in result.stderr
    assert record["tracking"]["status"] == "skipped"  # nothing new: no MLflow run either
    rows = [json.loads(p.read_text()) for p in (v2_copy / ".churnctl" / "stage-rows").glob("*")]
    assert all(row["run_id"] != record["run_id"] for row in rows)  # no stage command ran
    assert len(ModelRegistry(Workspace(v2_copy).registry).versions()) == 1


def test_changed_param_reruns_only_train_and_mirrors_the_gate(v2_copy: Path) -> None:
    from mlflow import MlflowClient

    result = _invoke(v2_copy, "run", *V2, "--json",
                     "--set", "train.algorithms=[logistic_regression]")
    record = _record(result)
    assert _statuses(record) == {"ingest": "cached", "validate": "cached",
                                 "features": "cached", "train": "ran"}
    assert "Running stage 'train'" in result.stderr
    assert "Running stage 'features'" not in result.stderr
    # The linear baseline alone is worse than production on the same test data: rejected.
    train = record["stages"][-1]
    assert train["summary"]["promoted"] is False and train["summary"]["model_version"] == 2
    uri = record["tracking"]["store"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    challenger = client.get_model_version_by_alias("churn", "challenger")
    assert champion.tags["churnctl.local_version"] == "1"
    assert challenger.tags["churnctl.local_version"] == "2"
    assert record["tracking"]["aliases"] == {"champion": int(champion.version),
                                             "challenger": int(challenger.version)}
    # The gate's decision, its bootstrap interval and the rows it used are in the MLflow run.
    logged = client.get_run(record["tracking"]["tracker_run"])
    interval = train["summary"]["incumbent"]["interval"]
    assert logged.data.metrics["gate.lower"] == pytest.approx(interval["lower"])
    assert logged.data.metrics["gate.rows"] == interval["rows"] > 0
    assert logged.data.tags["churnctl.promotion"] == train["summary"]["decision"]
    reports = {a.path for a in client.list_artifacts(logged.info.run_id, "reports")}
    assert "reports/promotion.json" in reports


def test_push_then_pull_restores_data_and_nothing_reruns(v2_copy: Path) -> None:
    pushed = _invoke(v2_copy, "dvc", "push", "--profile", "v2")
    assert pushed.exit_code == 0, pushed.output
    assert any((v2_copy / ".dvc-remote").rglob("*")), "local remote stays empty"
    before = {p.relative_to(v2_copy): file_sha256(p) for p in (v2_copy / "data").rglob("*")
              if p.is_file()}
    shutil.rmtree(v2_copy / "data")
    shutil.rmtree(v2_copy / ".dvc" / "cache")
    pulled = _invoke(v2_copy, "dvc", "pull", "--profile", "v2")
    assert pulled.exit_code == 0, pulled.output
    after = {p.relative_to(v2_copy): file_sha256(p) for p in (v2_copy / "data").rglob("*")
             if p.is_file()}
    assert after == before
    record = _record(_invoke(v2_copy, "run", *V2, "--json"))
    assert set(_statuses(record).values()) == {"cached"}


def test_v1_and_v2_give_same_features_and_metrics(small_run, v2_run) -> None:
    """The parity the profile switch promises: same data and seed, same outputs."""
    (v1_root, v1), (v2_root, v2) = small_run, v2_run
    v1_rows = {row["name"]: row for row in v1["stages"]}
    v2_rows = {row["name"]: row for row in v2["stages"]}
    for name in ("ingest", "validate", "features"):
        assert v2_rows[name]["outputs"] == v1_rows[name]["outputs"], name
    # The files themselves, hashed again: v1's artifact and v2's DVC output.
    v1_features = v1_root / v1_rows["features"]["artifact"]
    for file in v1_rows["features"]["outputs"]:
        assert file_sha256(v2_root / "data" / "features" / file) == \
            file_sha256(v1_features / file), file
    assert v2_rows["train"]["key"] == v1_rows["train"]["key"]
    assert v2["metrics"] == v1["metrics"]
    assert v2["parameters"] == v1["parameters"]


def test_serving_follows_the_mlflow_champion_alias(v2_copy: Path) -> None:
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from churnctl.backends.serve_fastapi import ServeOptions
    from churnctl.serving.app import create_app

    rejected = _record(_invoke(v2_copy, "run", *V2, "--json",
                               "--set", "train.algorithms=[logistic_regression]"))
    uri = rejected["tracking"]["store"]
    aliases = rejected["tracking"]["aliases"]
    options = ServeOptions(model_source="mlflow", mlflow_tracking_uri=uri,
                           reload_interval_seconds=0)
    app = create_app(Workspace(v2_copy), options)
    holder = app.state.holder
    with TestClient(app) as client:
        holder.refresh()
        assert client.get("/model").json()["version"] == aliases["champion"]
        MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
            "churn", "champion", str(aliases["challenger"]))
        assert holder.refresh() is True
        assert client.get("/model").json()["version"] == aliases["challenger"]
        assert client.get("/ready").status_code == 200
