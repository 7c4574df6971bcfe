"""Batch scoring (`churnctl predict`) and the CLI wiring of `churnctl serve`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry
from churnctl.errors import UserError
from churnctl.serving.batch import score_latest
from churnctl.workspace import Workspace
from tests.serving_demo import (
    demo_features,
    make_demo_workspace,
    register_model,
    train_demo_model,
    write_features_artifact,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_demo_workspace(tmp_path_factory.mktemp("batch"), users=1200)


def _production_model(workspace: Workspace) -> ChurnModel:
    registry = ModelRegistry(workspace.registry)
    return ChurnModel.load(registry.model_path(registry.production().version))


def test_predictions_match_the_model_and_are_ranked(demo: Workspace, tmp_path: Path) -> None:
    result = score_latest(demo, out_dir=tmp_path / "out", top_k=25)
    frame = pd.read_parquet(result.files["parquet"])
    assert list(frame.columns) == ["user_id", "as_of", "churn_probability", "churn_predicted",
                                   "risk_rank", "model_version"]
    assert len(frame) == result.rows == 1200
    features = pd.read_parquet(next(demo.artifacts.glob("features/*/latest.parquet")))
    expected = _production_model(demo).predict_proba(features)
    by_user = frame.set_index("user_id").loc[features["user_id"], "churn_probability"]
    np.testing.assert_allclose(by_user.to_numpy(), expected, atol=1e-9)
    ordered = frame.sort_values("risk_rank")
    assert ordered["risk_rank"].tolist() == list(range(1, 1201))
    assert ordered["churn_probability"].is_monotonic_decreasing
    csv = pd.read_csv(result.files["csv"])
    assert len(csv) == 1200 and set(csv.columns) == set(frame.columns)
    top = pd.read_csv(result.files["top_k"])
    assert top["risk_rank"].tolist() == list(range(1, 26))
    summary = json.loads(result.files["summary"].read_text())
    assert summary["model_version"] == 1 and summary["scorer"] == "linear"
    assert not list((tmp_path / "out").glob(".*.tmp"))  # temp files renamed or removed


@pytest.fixture(scope="module")
def boosting_demo(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_demo_workspace(tmp_path_factory.mktemp("boosting"), users=1500, algorithm="hgb")


def test_gradient_boosting_batch_runs_on_the_compiled_library(boosting_demo: Workspace,
                                                              tmp_path: Path) -> None:
    pytest.importorskip("tl2cgen")
    result = score_latest(boosting_demo, out_dir=tmp_path / "out")
    summary = json.loads(result.files["summary"].read_text())
    assert summary["scorer"] == "tl2cgen" and summary["scorer_reason"] == ""
    assert summary["verified_rows"] >= 2_000  # 1,000 synthetic + edge cases + real rows
    assert summary["seconds"]["verify"] > 0
    libraries = list((boosting_demo.state / "cache" / "compiled").iterdir())
    assert len(libraries) == 1 and libraries[0].suffix == ".so"
    features = pd.read_parquet(next(boosting_demo.artifacts.glob("features/*/latest.parquet")))
    frame = pd.read_parquet(result.files["parquet"]).set_index("user_id")
    np.testing.assert_allclose(frame.loc[features["user_id"], "churn_probability"].to_numpy(),
                               _production_model(boosting_demo).predict_proba(features),
                               rtol=0, atol=1e-9)
    built = libraries[0].stat().st_mtime_ns
    again = score_latest(boosting_demo, out_dir=tmp_path / "again")
    assert again.scorer == "tl2cgen" and libraries[0].stat().st_mtime_ns == built  # cached


def test_batch_without_the_library_says_why(boosting_demo: Workspace, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "treelite", None)
    result = score_latest(boosting_demo, out_dir=tmp_path / "out")
    summary = json.loads(result.files["summary"].read_text())
    assert summary["scorer"] == "trees"
    assert "treelite/tl2cgen not installed" in summary["scorer_reason"]
    features = pd.read_parquet(next(boosting_demo.artifacts.glob("features/*/latest.parquet")))
    frame = pd.read_parquet(result.files["parquet"]).set_index("user_id")
    np.testing.assert_allclose(frame.loc[features["user_id"], "churn_probability"].to_numpy(),
                               _production_model(boosting_demo).predict_proba(features),
                               rtol=0, atol=1e-9)


def test_as_of_picks_each_users_newest_snapshot_before_the_date(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    old = demo_features(300, seed=1, as_of=date(2025, 3, 31))
    new = demo_features(300, seed=2, as_of=date(2025, 4, 30))
    register_model(workspace, train_demo_model(old, "logistic"))
    write_features_artifact(workspace, pd.concat([old, new], ignore_index=True))
    march = score_latest(workspace, as_of=date(2025, 4, 15), out_dir=tmp_path / "march")
    assert march.rows == 300 and march.as_of == "2025-03-31" and march.skipped_after_as_of == 300
    latest = score_latest(workspace, out_dir=tmp_path / "april")
    assert latest.rows == 300 and latest.as_of == "2025-04-30"
    with pytest.raises(UserError, match="no snapshot on or before 2025-01-01"):
        score_latest(workspace, as_of=date(2025, 1, 1), out_dir=tmp_path / "none")


def test_clear_errors_without_model_or_features(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path).ensure()
    with pytest.raises(UserError, match="no production model"):
        score_latest(workspace)
    register_model(workspace, train_demo_model(demo_features(200), "logistic"))
    with pytest.raises(UserError, match="no features artifact"):
        score_latest(workspace)


def test_predict_command(demo: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["predict", "--workspace", str(demo.root), "--out",
                                      str(out), "--top-k", "7", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 1200 and summary["rows_per_second"] > 0
    assert len(pd.read_csv(out / "top_k.csv")) == 7
    shown = CliRunner().invoke(app, ["predict", "--workspace", str(demo.root), "--out", str(out)])
    assert shown.exit_code == 0 and "scored 1,200 users with model v1" in shown.stdout


def test_out_may_name_the_parquet_file(demo: Workspace, tmp_path: Path) -> None:
    result = score_latest(demo, out_dir=tmp_path / "data" / "scores.parquet", top_k=3)
    names = sorted(path.name for path in (tmp_path / "data").iterdir())
    assert names == ["scores.csv", "scores.parquet", "scores_summary.json", "scores_top_k.csv"]
    assert len(pd.read_csv(result.files["top_k"])) == 3


def test_predict_command_explains_a_bad_date(demo: Workspace) -> None:
    result = CliRunner().invoke(app, ["predict", "-w", str(demo.root), "--as-of", "2024-01-01"])
    assert result.exit_code == 2
    assert "no snapshot on or before 2024-01-01" in result.output


def test_serve_command_merges_flags_over_the_profile(demo: Workspace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from churnctl.backends.serve_fastapi import FastapiServe

    seen = {}
    monkeypatch.setattr(FastapiServe, "serve",
                        lambda self, workspace, options: seen.update(options=options, ws=workspace))
    result = CliRunner().invoke(app, ["serve", "-w", str(demo.root), "--port", "0",
                                      "--workers", "3"])
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.host, options.port, options.workers) == ("127.0.0.1", 0, 3)
    assert options.max_batch == 1000 and seen["ws"].root == demo.root
    assert "model v1 (logistic)" in result.output


def test_serve_command_rejects_bad_options(demo: Workspace, tmp_path: Path) -> None:
    profile = tmp_path / "mine.yaml"
    profile.write_text("name: mine\nextends: v1\nstages:\n  serve:\n    backend: fastapi\n"
                       "    options: {max_batch: 0, reload_every: 3}\n")
    result = CliRunner().invoke(app, ["serve", "-w", str(demo.root), "-p", str(profile)])
    assert result.exit_code == 2
    assert "max_batch" in result.output and "reload_every" in result.output


def test_serve_command_stops_on_a_busy_port(demo: Workspace) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "-w", str(demo.root), "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_the_server_scores_gradient_boosting_batches_on_the_compiled_library(
        boosting_demo: Workspace) -> None:
    pytest.importorskip("tl2cgen")
    from fastapi.testclient import TestClient

    from churnctl.serving.app import create_app

    server = create_app(boosting_demo, {"max_batch": 500})
    server.state.holder.refresh()
    with TestClient(server) as client:
        assert client.get("/model").json()["scorer"] == "tl2cgen"
        features = pd.read_parquet(
            next(boosting_demo.artifacts.glob("features/*/latest.parquet"))).head(400)
        ids = features["user_id"].tolist()
        answer = client.post("/predict/batch", json={"customers": [{"user_id": u} for u in ids]})
    assert answer.status_code == 200, answer.text
    scores = [row["churn_probability"] for row in answer.json()["predictions"]]
    np.testing.assert_allclose(scores, _production_model(boosting_demo).predict_proba(features),
                               rtol=0, atol=1e-9)
    assert len(list((boosting_demo.state / "cache" / "compiled").glob("*.so"))) == 1
