"""`churnctl run --data`: a customer table end to end, then scoring and serving on the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnctl.domain.model import ChurnModel
from churnctl.domain.model_registry import ModelRegistry
from churnctl.domain.table_model import TableChurnModel
from churnctl.domain.table_scoring import score_table
from churnctl.errors import DataError
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace
from tests.fixtures_tables import FAST, run_table, telecom_like, with_signup_month


@pytest.fixture(scope="module")
def telecom_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("telecom")
    telecom_like(1500, seed=1).to_csv(root / "customers.csv", index=False)
    result = run_table(root, root / "customers.csv", "--target", "Churn")
    assert result.exit_code == 0, result.output
    return root, json.loads(result.stdout)


def _artifact(root: Path, record: dict, stage: str) -> ArtifactRef:
    row = next(r for r in record["stages"] if r["name"] == stage)
    return ArtifactRef.load(root / row["artifact"])


def test_run_uses_table_backends_and_reaches_good_auc(telecom_run) -> None:
    root, record = telecom_run
    assert [(s["name"], s["backend"], s["status"]) for s in record["stages"]] == [
        ("ingest", "table", "ran"), ("validate", "table", "ran"), ("features", "table", "ran"),
        ("train", "sklearn", "ran")]
    assert record["parameters"]["ingest"]["path"] == "customers.csv"  # relative to workspace
    assert 0.8 < record["metrics"]["roc_auc"] < 0.95
    assert record["report"]["html"] == f"reports/{record['run_id']}.html"
    assert (root / "reports" / f"{record['run_id']}.html").is_file()
    assert (root / "reports" / "latest.html").is_file()
    evaluation = json.loads(_artifact(root, record, "train").report("evaluation").read_text())
    assert evaluation["selection"] == "validation folds of the training set (stratified)"
    assert set(evaluation["cv"]) == {"logistic_regression", "hist_gradient_boosting"}
    # The test set measures the chosen model only: nothing else was scored on it.
    assert list(evaluation["models"]) == [evaluation["chosen"]]
    assert evaluation["threshold"]["rule"] == "cost" and evaluation["threshold"]["value"] == 0.2


def test_artifacts_keep_the_training_set_contract(telecom_run) -> None:
    root, record = telecom_run
    features = _artifact(root, record, "features")
    schema = features.meta("feature_schema")
    assert schema["id"] == "customerID" and schema["target"] == "Churn"
    assert "TotalCharges" in schema["numeric"] and "Contract" in schema["categorical"]
    assert "customerID" not in schema["numeric"] + schema["categorical"]
    train = pd.read_parquet(features.table("train"))
    test = pd.read_parquet(features.table("test"))
    latest = pd.read_parquet(features.table("latest"))
    assert len(train) + len(test) == len(latest) == 1500 and "Churn" not in latest
    assert abs(train["Churn"].mean() - test["Churn"].mean()) < 0.02  # stratified
    predictions = pd.read_parquet(_artifact(root, record, "train").table("test_predictions"))
    assert list(predictions.columns) == ["customerID", "y_true", "proba"]
    assert len(predictions) == len(test)


def test_rerun_is_cached_and_plan_agrees(cli, telecom_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(telecom_run[0], root)
    moved = json.loads(run_table(root, root / "customers.csv", "--target", "Churn").stdout)
    # External files inside the workspace are keyed by relative path: a copied (or moved)
    # project keeps its whole cache.
    assert [s["status"] for s in moved["stages"]] == ["cached"] * 4
    record = json.loads(run_table(root, root / "customers.csv", "--target", "Churn").stdout)
    assert {s["status"] for s in record["stages"]} == {"cached"}
    # The cached run links the page of the run that trained its model; it writes none.
    assert record["report"]["html"] == telecom_run[1]["report"]["html"]
    assert (root / record["report"]["html"]).is_file()
    assert not (root / "reports" / f"{record['run_id']}.html").exists()
    assert len(ModelRegistry(Workspace(root).registry).versions()) == 1
    plan = json.loads(cli("plan", "--workspace", str(root), "--data", str(root / "customers.csv"),
                          "--target", "Churn", *FAST, "--json").stdout)
    assert [s["status"] for s in plan["stages"]] == ["cached"] * 4
    changed = json.loads(cli("plan", "--workspace", str(root), "--data",
                             str(root / "customers.csv"), "--target", "Churn", "--positive", "No",
                             *FAST, "--json").stdout)
    assert changed["stages"][0]["status"] == "run"
    assert "positive" in changed["stages"][0]["reason"]


def test_changed_file_content_reruns_ingest(telecom_run, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(telecom_run[0], root)
    frame = pd.read_csv(root / "customers.csv", dtype=str, keep_default_na=False)
    frame.iloc[:40].to_csv(root / "customers.csv", index=False)  # same name, other content
    result = run_table(root, root / "customers.csv", "--target", "Churn", "--only", "ingest")
    assert json.loads(result.stdout)["stages"][0]["status"] == "ran"


def test_serving_and_batch_scoring_work_on_the_table_model(telecom_run) -> None:
    from churnctl.serving.scoring import compile_scorer

    root, record = telecom_run
    registry = ModelRegistry(Workspace(root).registry)
    production = registry.production()
    model = ChurnModel.load(registry.model_path(production.version))
    assert isinstance(model, TableChurnModel) and model.id_column == "customerID"
    kinds = {f["name"]: f for f in production.feature_schema}
    assert kinds["Contract"]["kind"] == "categorical"
    assert set(kinds["Contract"]["categories"]) == {"Month-to-month", "One year", "Two year"}
    assert kinds["Partner"]["kind"] == "numeric"  # Yes/No read as a boolean
    latest = pd.read_parquet(_artifact(root, record, "features").table("latest"))
    scorer = compile_scorer(model)
    expected = model.predict_proba(latest.head(50))
    assert np.allclose(scorer.score_frame(latest.head(50)), expected)
    records = latest.head(3).drop(columns=["customerID"]).to_dict("records")
    assert np.allclose(scorer.score_records(records), expected[:3])


def test_score_new_export(telecom_run, tmp_path: Path) -> None:
    root, _ = telecom_run
    new = telecom_like(200, seed=7).drop(columns=["Churn"])
    new.loc[0, "PaymentMethod"] = "Crypto"  # a category training never saw
    new.loc[1, "MonthlyCharges"] = None  # a blank number
    new["Segment"] = "B2C"  # an extra column
    new.to_csv(tmp_path / "month.csv", index=False)
    out = tmp_path / "scores.csv"
    result = score_table(Workspace(root), tmp_path / "month.csv", out)
    scores = pd.read_csv(out)
    assert result["rows"] == len(scores) == 200 and result["id_column"] == "customerID"
    assert list(scores.columns) == ["customerID", "churn_probability"]
    assert scores["customerID"].tolist() == new["customerID"].tolist()
    assert scores["churn_probability"].between(0, 1).all()
    assert any("Crypto" in n for n in result["notices"])
    assert any("ignored 1 column(s) the model does not use: Segment" in n
               for n in result["notices"])
    assert any("column MonthlyCharges: 1 blank cell(s)" in n for n in result["notices"])
    new["tenure"] = None  # blank in every row: every score moves
    new.to_csv(tmp_path / "month.csv", index=False)
    blank = score_table(Workspace(root), tmp_path / "month.csv", out)
    assert any("column tenure is blank in every row" in n for n in blank["notices"])
    with_target = telecom_like(300, seed=8)
    with_target.to_parquet(tmp_path / "past.parquet", index=False)
    past = score_table(Workspace(root), tmp_path / "past.parquet", tmp_path / "past_scores.parquet")
    assert past["rows"] == 300 and past["metrics"]["roc_auc"] > 0.75


def test_score_new_export_errors_name_the_problem(telecom_run, tmp_path: Path) -> None:
    root, _ = telecom_run
    telecom_like(50).drop(columns=["Contract", "tenure"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"missing feature column\(s\) tenure, Contract"):
        score_table(Workspace(root), tmp_path / "bad.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    (tmp_path / "header.csv").write_text(",".join(telecom_like(5).columns) + "\n")
    with pytest.raises(DataError, match="no rows"):
        score_table(Workspace(root), tmp_path / "header.csv", tmp_path / "out.csv")


def test_row_numbers_when_no_id(telecom_run, tmp_path: Path) -> None:
    root, _ = telecom_run
    telecom_like(30).drop(columns=["customerID"]).to_csv(tmp_path / "noid.csv", index=False)
    result = score_table(Workspace(root), tmp_path / "noid.csv", tmp_path / "out.parquet")
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert result["id_column"] == "row_number" and scores["row_number"].tolist() == list(
        range(1, 31))


def test_split_by_time(tmp_path: Path) -> None:
    frame = with_signup_month(telecom_like(900, seed=2))
    frame.to_csv(tmp_path / "snapshots.csv", index=False)
    result = run_table(tmp_path, tmp_path / "snapshots.csv", "--target", "Churn", "--time",
                       "snapshot", "--only", "ingest", "--only", "validate", "--only", "features")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    features = _artifact(tmp_path, record, "features")
    schema = features.meta("feature_schema")
    assert schema["time"] == "snapshot" and schema["split"] == "time"
    assert "snapshot" not in schema["numeric"] + schema["categorical"]
    train = pd.read_parquet(features.table("train"))
    test = pd.read_parquet(features.table("test"))
    assert train["snapshot"].max() < test["snapshot"].min()


def test_leakage_guard_stops_a_leaking_column(cli, tmp_path: Path) -> None:
    frame = telecom_like(800, seed=3)
    frame["ChurnReason"] = np.where(frame["Churn"] == "Yes", "Competitor offer", "")
    frame.to_csv(tmp_path / "leaky.csv", index=False)
    result = cli("run", "--data", "leaky.csv", "--target", "Churn", *FAST)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "leakage guard" in errors[0] and "ChurnReason" in errors[0]
    assert not (tmp_path / "reports" / "latest.html").exists()


def test_serving_requests_and_batch_scoring_use_the_inferred_schema(telecom_run,
                                                                   tmp_path: Path) -> None:
    from pydantic import ValidationError

    from churnctl.serving.batch import score_latest
    from churnctl.serving.schema import build_request_models

    root, record = telecom_run
    production = ModelRegistry(Workspace(root).registry).production()
    models = build_request_models(production.feature_schema, max_batch=10)
    latest = pd.read_parquet(_artifact(root, record, "features").table("latest"))
    row = latest.dropna().iloc[0].drop(labels=["customerID"]).to_dict()
    request = {name: (float(value) if isinstance(value, int | float | np.number) else value)
               for name, value in row.items()}
    assert models.predict.model_validate({"features": request}).features is not None
    with pytest.raises(ValidationError):
        models.predict.model_validate({"features": {**request, "tenure": "twelve"}})
    result = score_latest(Workspace(root), out_dir=tmp_path / "batch")
    assert result.rows == 1500
    scores = pd.read_parquet(result.files["parquet"])
    assert set(scores["user_id"]) == set(latest["customerID"])


def test_predict_data_through_the_cli(cli, telecom_run, tmp_path: Path) -> None:
    root, _ = telecom_run
    telecom_like(120, seed=9).drop(columns=["Churn"]).to_csv(tmp_path / "june.csv", index=False)
    out = tmp_path / "june_scores.parquet"
    result = cli("predict", "--workspace", str(root), "--data", str(tmp_path / "june.csv"),
                 "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 120
    assert len(pd.read_parquet(out)) == 120
    no_out = cli("predict", "--workspace", str(root), "--data", str(tmp_path / "june.csv"))
    assert no_out.exit_code == 2 and "--out FILE.csv" in no_out.stderr
