"""`churnctl monitor drift` end to end on a small finished v1 run and generated data."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnctl.artifacts import ArtifactRef
from churnctl.cli.main import app as cli_app
from churnctl.domain.model_registry import ModelRegistry
from churnctl.monitoring import gauges
from churnctl.workspace import Workspace

GENERATED = ["--users", "400", "--days", "100", "--seed", "7"]
FAILS_ON_PLANTED_DRIFT = {"country", "marketing_source"}  # the mixes the generator shifts


def drift(workspace: Path, *args: str) -> Any:
    return CliRunner().invoke(cli_app, ["monitor", "drift", "--workspace", str(workspace),
                                              *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Same-process data with another seed, and the same with covariate drift planted."""
    from churnctl.cli.main import app

    root = tmp_path_factory.mktemp("drift_data")
    out = {}
    for name, amount in (("same", "0"), ("drifted", "1.0")):
        result = CliRunner().invoke(app, ["data", "generate", *GENERATED, "--drift", amount,
                                          "--out", str(root / name)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out[name] = root / name
    return out


def test_data_from_the_same_process_passes(finished_workspace: Path, datasets) -> None:
    result = drift(finished_workspace, "--current", str(datasets["same"]), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] in ("ok", "warn") and report["failing"] == []
    schema = ArtifactRef.load(finished_workspace / report["reference"]["artifact"]
                              ).meta("feature_schema")
    # Every model feature is checked, by name, and each exists on both sides.
    assert [f["name"] for f in report["features"]] == schema["numeric"] + schema["categorical"]
    assert report["reference"]["why"] == "trained production model v1"
    assert report["current"]["kind"] == "raw" and report["current"]["as_of"] == "2025-04-10"
    numeric = [f for f in report["features"] if f["kind"] == "numeric"]
    assert all(f["ks_pvalue"] is not None for f in numeric)
    latest = json.loads((finished_workspace / "reports/drift/latest.json").read_text())
    assert latest["check_id"] == report["check_id"]
    exported = gauges.drift_gauges(Workspace(finished_workspace))
    assert exported["churn_drift_status"] == {"ok": 0, "warn": 1}[report["status"]]
    psi_series = [k for k in exported if k.startswith("churn_feature_psi{")]
    assert len(psi_series) == len(schema["numeric"]) + len(schema["categorical"])


def test_planted_drift_fails_with_exit_code_2(finished_workspace: Path, datasets) -> None:
    result = drift(finished_workspace, "--current", str(datasets["drifted"]))
    assert result.exit_code == 2, result.output
    assert "drift fail" in result.stdout
    for feature in FAILS_ON_PLANTED_DRIFT:
        assert feature in result.stdout
    latest = json.loads((finished_workspace / "reports/drift/latest.json").read_text())
    assert set(latest["failing"]) >= FAILS_ON_PLANTED_DRIFT and latest["retrain"] is None
    assert gauges.drift_gauges(finished_workspace)["churn_drift_status"] == 2
    assert list((finished_workspace / "reports/drift/history").glob("*.json"))


class Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.features: list[tuple[str, str]] = []
        self.plots: list[str] = []
        self.scripts_with_plotly = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("class") == "feature":
            self.features.append((str(found["data-feature"]), str(found["data-status"])))
        if tag == "div" and str(found.get("id", "")).startswith("plot-"):
            self.plots.append(str(found["id"]))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        # The plotly.js bundle defines the global it exports; figures only call it.
        if self._in_script and "Plotly" in data and len(data) > 1_000_000:
            self.scripts_with_plotly += 1


def test_html_report_has_a_section_and_plot_per_feature(finished_workspace: Path,
                                                          datasets) -> None:
    result = drift(finished_workspace, "--current", str(datasets["drifted"]), "--json",
                   "--features", "country,events_30d,days_since_last_activity")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    page = Path(report["report"]).read_text(encoding="utf-8")
    parser = Sections()
    parser.feed(page)
    statuses = {f["name"]: f["status"] for f in report["features"]}
    assert dict(parser.features) == statuses
    assert len(parser.plots) == len(statuses)
    assert parser.scripts_with_plotly == 1  # inline once: opens offline, no CDN
    assert "<script src=" not in page and '<link rel="stylesheet"' not in page


def test_features_option_checks_only_those_and_rejects_unknown_names(finished_workspace: Path,
                                                                      datasets) -> None:
    result = drift(finished_workspace, "--current", str(datasets["same"]), "--json",
                   "--features", " country , events_30d")
    assert result.exit_code == 0, result.output
    assert [f["name"] for f in json.loads(result.stdout)["features"]] == ["events_30d", "country"]
    bad = drift(finished_workspace, "--current", str(datasets["same"]),
                "--features", "country,nope,Bogus")
    assert bad.exit_code == 2
    assert "unknown feature(s) nope, Bogus" in bad.stderr


def test_a_feature_missing_from_the_current_table_is_an_error(finished_workspace: Path,
                                                               tmp_path: Path) -> None:
    from churnctl.runs import latest_artifact

    features = latest_artifact(Workspace(finished_workspace), "features")
    assert features is not None
    table = pd.read_parquet(features.table("latest")).drop(columns=["country"])
    table.to_csv(tmp_path / "today.csv", index=False)  # a features export as CSV
    result = drift(finished_workspace, "--current", str(tmp_path / "today.csv"))
    assert result.exit_code == 2
    assert "current data has no column(s) country" in result.stderr
    ok = drift(finished_workspace, "--current", str(tmp_path / "today.csv"), "--features",
               "events_30d,plan", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["current"]["kind"] == "features"


def test_reference_run_set_and_thresholds(finished_workspace: Path, small_run, datasets) -> None:
    run_id = small_run[1]["run_id"]
    result = drift(finished_workspace, "--current", str(datasets["drifted"]), "--json",
                   "--reference", run_id[:15], "--reference-set", "train",
                   "--warn", "5", "--fail", "10")
    assert result.exit_code == 0, result.output  # nothing reaches a PSI of 10
    report = json.loads(result.stdout)
    assert report["reference"]["run_id"] == run_id and report["reference"]["set"] == "train"
    assert report["thresholds"] == {"warn": 5.0, "fail": 10.0}
    assert drift(finished_workspace, "--reference", "nosuchrun", "--current",
                 str(datasets["same"])).exit_code == 2
    backwards = drift(finished_workspace, "--current", str(datasets["same"]), "--warn", "0.3",
                      "--fail", "0.2")
    assert backwards.exit_code == 2 and "warn <= fail" in backwards.stderr


def test_thresholds_from_the_profile_and_current_from_its_ingest_files(
        finished_workspace: Path, datasets, tmp_path: Path) -> None:
    profile = tmp_path / "team.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "team", "extends": "v1",
        "stages": {"ingest": {"backend": "files", "options": {
            "users": str(datasets["drifted"] / "users.parquet"),
            "events": str(datasets["drifted"] / "events.parquet")}}},
        "monitoring": {"backend": "prometheus", "options": {"psi_warn": 0.5, "psi_fail": 5}}}))
    result = drift(finished_workspace, "--profile", str(profile), "--json")
    assert result.exit_code == 0, result.output  # no feature reaches a PSI of 5
    report = json.loads(result.stdout)
    assert report["thresholds"] == {"warn": 0.5, "fail": 5.0}
    assert report["current"]["source"].startswith(str(datasets["drifted"] / "users.parquet"))
    flagged = drift(finished_workspace, "--profile", str(profile), "--warn", "0.1", "--fail",
                    "0.25", "--json")
    assert flagged.exit_code == 2  # flags win over the profile
    assert json.loads(flagged.stdout)["thresholds"] == {"warn": 0.1, "fail": 0.25}


def test_without_current_data_it_says_what_to_pass(finished_workspace: Path) -> None:
    result = drift(finished_workspace)  # v1 ingests with the generator script, not files
    assert result.exit_code == 2 and "pass --current PATH" in result.stderr


def test_empty_workspace_says_to_run_first(tmp_path: Path, datasets) -> None:
    result = drift(tmp_path, "--current", str(datasets["same"]))
    assert result.exit_code == 2 and "run `churnctl run` first" in result.stderr


def test_retrain_needs_raw_data(finished_workspace: Path, tmp_path: Path) -> None:
    from churnctl.runs import latest_artifact

    features = latest_artifact(Workspace(finished_workspace), "features")
    assert features is not None
    result = drift(finished_workspace, "--current", str(features.table("latest")),
                   "--retrain")
    assert result.exit_code == 2 and "--retrain needs raw data" in result.stderr


def test_failing_check_retrains_and_the_gate_decides(finished_workspace: Path, datasets) -> None:
    ws = Workspace(finished_workspace)
    registry = ModelRegistry(ws.registry)
    assert [v.version for v in registry.versions()] == [1]
    # A margin no model can beat: the gate must keep production (the promoted branch, with a
    # running server, is tests/test_monitoring_loop.py).
    result = drift(finished_workspace, "--current", str(datasets["drifted"]), "--retrain",
                   "--json", "--set", "train.algorithms=[logistic_regression]",
                   "--set", "train.promotion_margin=1")
    assert result.exit_code == 2, result.output  # the check failed; retraining is reported
    retrain = json.loads(result.stdout)["retrain"]
    assert retrain["status"] == "succeeded" and retrain["model_version"] == 2
    assert retrain["promoted"] is False
    assert re.search(r"vs production v1 [0-9.]+ on the same test data \(margin 1\.0, "
                     r"difference [-+0-9.]+, 90% interval [-+0-9.]+\.\.[-+0-9.]+ over [0-9,]+ "
                     r"rows; lower bound not above the margin\): kept production",
                     retrain["decision"])
    assert registry.get(2).status == "rejected" and registry.production().version == 1
    latest = json.loads((finished_workspace / "reports/drift/latest.json").read_text())
    assert latest["retrain"] == retrain
    assert gauges.retrain_gauges(ws)  # the retraining run counts as a successful retrain
    # The new run trained on the drifted files through the files ingest, with the --set.
    from churnctl.runs import load_record

    record = load_record(ws, retrain["run_id"])
    assert record["parameters"]["ingest"]["users"] == str(datasets["drifted"] / "users.parquet")
    assert record["parameters"]["train"]["algorithms"] == ["logistic_regression"]
