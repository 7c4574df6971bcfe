"""Regions: one overlay per region on top of production; `deploy --region R` and
`--all-regions` (one after the other, stopping at the first failure and saying where)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from churnctl.cli.main import app
from tests.kube_emulator import running_emulator
from tests.rollouts_cluster import serve_argo_rollouts

pytestmark = pytest.mark.filterwarnings(
    "ignore:read_binary is deprecated:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
REGIONS = ["eu-west-1", "us-east-1"]


def churnctl(*args: str, workspace: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--workspace", str(workspace)])


@pytest.fixture(autouse=True)
def _checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)


def test_every_region_renders_production_with_its_region(tmp_path: Path) -> None:
    result = churnctl("deploy", "--profile", "v4", "--dry-run", "--all-regions", "--json",
                      "--out", str(tmp_path / "out"), workspace=tmp_path)
    assert result.exit_code == 0, result.output
    regions = json.loads(result.stdout)["regions"]
    assert [r["overlay"] for r in regions] == REGIONS
    for region in REGIONS:
        docs = list(yaml.safe_load_all((tmp_path / "out" / region / "manifests.yaml").read_text()))
        rollout = next(d for d in docs if d["kind"] == "Rollout")
        assert rollout["metadata"]["labels"]["churnctl.io/region"] == region
        pod = rollout["spec"]["template"]["metadata"]["labels"]
        assert pod["churnctl.io/region"] == region  # on pods: Prometheus keeps it per series
        assert "churnctl.io/region" not in rollout["spec"]["selector"]["matchLabels"]
        assert rollout["spec"]["replicas"] == 2  # production's sizing underneath
        config = next(d for d in docs if d["kind"] == "ConfigMap")
        assert config["data"]["CHURNCTL_REGION"] == region
        assert config["data"]["CHURNCTL_ENV"] == "production"


@pytest.mark.emulator
def test_all_regions_stops_at_the_first_failure_and_says_which_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "regions.yaml"
    profile.write_text(yaml.safe_dump({"name": "regions", "extends": "v4", "stages": {
        "deploy": {"backend": "argo-rollouts", "options": {
            "regions": [*REGIONS, "ap-south-1"],
            "region_contexts": {"eu-west-1": "kmock", "us-east-1": "gone"}}}}}))
    with running_emulator(tmp_path) as emulator:
        serve_argo_rollouts(emulator)
        monkeypatch.setenv("KUBECONFIG", str(emulator.kubeconfig))
        # ap-south-1 has no overlay, but the run stops before it: us-east-1 fails first.
        result = churnctl("deploy", "--profile", str(profile), "--all-regions",
                          workspace=tmp_path)
        assert result.exit_code == 2, result.output
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error")]
        assert len(errors) == 1, result.output
        assert errors[0].startswith("error: region us-east-1: no Kubernetes cluster reachable "
                                    "(context gone)")
        assert errors[0].endswith("(done: eu-west-1; not started: ap-south-1)")
        assert "region eu-west-1: done" in result.output
        rollout = emulator.stored("rollouts", "churn", "churnctl-api")
        assert rollout["metadata"]["labels"]["churnctl.io/region"] == "eu-west-1"


def test_each_region_s_analysis_queries_its_own_prometheus(tmp_path: Path) -> None:
    profile = tmp_path / "regions.yaml"
    profile.write_text(yaml.safe_dump({"name": "regions", "extends": "v4", "stages": {
        "deploy": {"backend": "argo-rollouts", "options": {"analysis": {
            "region_prometheus": {"us-east-1": "http://prometheus.us-east-1.internal:9090"}}}}}}))
    result = churnctl("deploy", "--profile", str(profile), "--dry-run", "--all-regions",
                      "--out", str(tmp_path / "out"), workspace=tmp_path)
    assert result.exit_code == 0, result.output
    addresses = {}
    for region in REGIONS:
        docs = yaml.safe_load_all((tmp_path / "out" / region / "manifests.yaml").read_text())
        addresses[region] = {m["provider"]["prometheus"]["address"] for d in docs
                             if d["kind"] == "AnalysisTemplate" for m in d["spec"]["metrics"]}
    assert addresses == {"eu-west-1": {"http://prometheus-operated.monitoring.svc:9090"},
                         "us-east-1": {"http://prometheus.us-east-1.internal:9090"}}
