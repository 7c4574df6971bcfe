"""Render (real kustomize via kubectl) and offline validation (real Kubernetes schemas)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnctl.backends.deploy_kubectl import KubectlDeploy, KubectlDeployOptions
from churnctl.deploy.render import (
    containers,
    k8s_root,
    kubectl_binary,
    kustomize,
    pod_spec,
    render,
    write_manifests,
)
from churnctl.deploy.validate import validate_manifests
from churnctl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"
KINDS = {
    "Namespace", "ConfigMap", "Service", "PersistentVolumeClaim", "Deployment", "CronJob",
    "NetworkPolicy",
}  # fmt: skip


def by_kind(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def staging() -> list[dict[str, Any]]:
    return render("staging", namespace="churn", root=K8S)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render("production", namespace="churn", root=K8S)


def test_staging_renders_every_kind_in_one_namespace(staging: list[dict[str, Any]]) -> None:
    assert {o["kind"] for o in staging} == KINDS
    assert by_kind(staging, "Namespace")["metadata"]["name"] == "churn"
    namespaced = [o for o in staging if o["kind"] != "Namespace"]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"churn"}
    # Namespace first: everything else lives in it.
    assert staging[0]["kind"] == "Namespace"
    names = {o["metadata"]["name"] for o in staging if o["kind"] == "CronJob"}
    assert names == {"churnctl-batch-score", "churnctl-retrain", "churnctl-drift"}


def test_overlays_differ_where_they_should(
    staging: list[dict[str, Any]], production: list[dict[str, Any]]
) -> None:
    assert by_kind(staging, "Deployment")["spec"]["replicas"] == 1
    assert by_kind(production, "Deployment")["spec"]["replicas"] == 2
    assert by_kind(production, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert by_kind(staging, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert by_kind(production, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    for objects, env in ((staging, "staging"), (production, "production")):
        assert by_kind(objects, "ConfigMap")["data"]["CHURNCTL_ENV"] == env
        for obj in objects:
            assert obj["metadata"]["labels"]["app.kubernetes.io/environment"] == env


def test_api_deployment_is_hardened(staging: list[dict[str, Any]]) -> None:
    deployment = by_kind(staging, "Deployment")
    (api,) = containers(deployment)
    assert api["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert set(api["resources"]["requests"]) == {"cpu", "memory"}
    assert set(api["resources"]["limits"]) == {"cpu", "memory"}
    assert {m["mountPath"] for m in api["volumeMounts"]} == {"/data", "/tmp"}
    # The selector must match the pod labels, and the Service must select the same pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = by_kind(staging, "Service", "churnctl-api")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in api["ports"]}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are used here"
    return selector["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_network_policy_admits_only_the_api_port_from_allowed_pods(overlay: str) -> None:
    objects = render(overlay, namespace="churn", root=K8S)
    policy = by_kind(objects, "NetworkPolicy")
    deployment = by_kind(objects, "Deployment")
    spec = policy["spec"]
    # It selects the API pods, and no CronJob's pods.
    assert _selects(spec["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    for job in (o for o in objects if o["kind"] == "CronJob"):
        pod_labels = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert not _selects(spec["podSelector"], pod_labels)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = spec["ingress"]
    (api,) = containers(deployment)
    assert rule["ports"] == [{"port": api["ports"][0]["containerPort"], "protocol": "TCP"}]
    # Every peer names a label: an empty selector (or a missing `from`) would admit everyone.
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"churnctl.io/api-access": "true"}}},
        {"namespaceSelector": {"matchLabels": {"churnctl.io/api-access": "true"}}},
    ]
    # Egress: DNS to kube-dns only.
    (dns,) = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    (peer,) = dns["to"]
    assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }


def test_api_token_comes_from_an_optional_secret(staging: list[dict[str, Any]]) -> None:
    (api,) = containers(by_kind(staging, "Deployment"))
    (token,) = [e for e in api["env"] if e["name"] == "CHURNCTL_API_TOKEN"]
    # optional: the pod starts (and the API asks for no token) until someone creates the Secret.
    assert token == {
        "name": "CHURNCTL_API_TOKEN",
        "valueFrom": {
            "secretKeyRef": {"name": "churnctl-api-token", "key": "token", "optional": True}
        },
    }
    # No Secret ships with the manifests, and no token goes into the ConfigMap.
    assert "Secret" not in {o["kind"] for o in staging}
    assert not any("TOKEN" in key for key in by_kind(staging, "ConfigMap")["data"])
    for job in (o for o in staging if o["kind"] == "CronJob"):
        assert "CHURNCTL_API_TOKEN" not in {e["name"] for e in containers(job)[0]["env"]}


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_every_workload_runs_non_root_read_only(overlay: str) -> None:
    workloads = [o for o in render(overlay, root=K8S) if pod_spec(o) is not None]
    assert {o["kind"] for o in workloads} == {"Deployment", "CronJob"}
    for obj in workloads:
        spec = pod_spec(obj) or {}
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in containers(obj):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"] and container["resources"]["requests"]


def test_cronjobs_score_and_retrain_on_the_shared_workspace(staging: list[dict[str, Any]]) -> None:
    score = by_kind(staging, "CronJob", "churnctl-batch-score")
    retrain = by_kind(staging, "CronJob", "churnctl-retrain")
    assert containers(score)[0]["args"] == ["predict", "--out", "/data/predictions.parquet"]
    assert containers(retrain)[0]["args"] == ["run"]
    claim = by_kind(staging, "PersistentVolumeClaim")["metadata"]["name"]
    for job in (score, retrain):
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        volumes = (pod_spec(job) or {})["volumes"]
        assert claim in {v.get("persistentVolumeClaim", {}).get("claimName") for v in volumes}
        env_from = containers(job)[0]["envFrom"][0]["configMapRef"]["name"]
        assert env_from == by_kind(staging, "ConfigMap")["metadata"]["name"]
    assert by_kind(staging, "ConfigMap")["data"]["CHURNCTL_WORKSPACE"] == "/data"


def test_namespace_and_images_are_overridden() -> None:
    objects = render(
        "staging",
        namespace="churn-dev",
        image="registry.local:5000/me/api:dev1",
        pipeline_image="registry.local:5000/me/batch@sha256:" + "a" * 64,
        root=K8S,
    )
    assert by_kind(objects, "Namespace")["metadata"]["name"] == "churn-dev"
    assert {o["metadata"].get("namespace") for o in objects} == {None, "churn-dev"}
    assert containers(by_kind(objects, "Deployment"))[0]["image"] == (
        "registry.local:5000/me/api:dev1"
    )
    for job in (o for o in objects if o["kind"] == "CronJob"):
        assert containers(job)[0]["image"].startswith("registry.local:5000/me/batch@sha256:")


def test_defaults_render_pinned_images() -> None:
    objects = KubectlDeploy().render(KubectlDeployOptions(manifests_dir=str(K8S)))
    images = {c["image"] for o in objects for c in containers(o)}
    assert images == {
        "ghcr.io/churnctl/churnctl:0.1.0",
        "ghcr.io/churnctl/churnctl-pipeline:0.1.0",
    }


def test_plain_kubectl_kustomize_renders_the_overlays_too() -> None:
    # Users without churnctl can still `kubectl kustomize infra/k8s/overlays/staging`.
    for overlay in ("staging", "production"):
        docs = [d for d in yaml.safe_load_all(kustomize(K8S / "overlays" / overlay)) if d]
        assert validate_manifests(docs).ok


def test_custom_overlay_directory(tmp_path: Path) -> None:
    overlay = tmp_path / "mine"
    overlay.mkdir()
    base = os.path.relpath(K8S / "base", overlay)
    patch = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [base],
                "patches": [{"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(patch)}],
            }
        )
    )
    objects = render(str(overlay), namespace="mine", root=K8S)
    assert by_kind(objects, "Deployment")["spec"]["replicas"] == 3


def test_render_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown overlay 'qa': use one of eu-west-1, "
                                        r"production, staging, us-east-1"):
        render("qa", root=K8S)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kustomization.yaml").write_text("resources: [does-not-exist.yaml]\n")
    with pytest.raises(UserError) as info:
        render(str(broken), root=K8S)
    assert str(info.value).startswith(f"kustomize failed on {broken}")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="no kustomize tree"):
        k8s_root(tmp_path)


def test_k8s_root_is_found_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHURNCTL_K8S_DIR", raising=False)
    assert k8s_root() == K8S
    monkeypatch.setenv("CHURNCTL_K8S_DIR", str(K8S))
    assert k8s_root() == K8S


def test_kubectl_is_new_enough_for_kustomize_labels() -> None:
    out = subprocess.run(
        [kubectl_binary(), "version", "--client", "-o", "yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    client = yaml.safe_load(out)
    assert (int(client["clientVersion"]["major"]), int(client["clientVersion"]["minor"])) >= (1, 27)
    assert client["kustomizeVersion"].startswith("v5")


@pytest.mark.parametrize("version", ["1.30", "1.37"])
@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_rendered_overlays_pass_strict_schema_validation(overlay: str, version: str) -> None:
    report = validate_manifests(render(overlay, namespace="churn", root=K8S), version)
    assert report.ok, report.errors
    assert report.warnings == []
    assert report.kubernetes_version == version


def test_validation_reports_every_problem_with_kind_name_field(
    staging: list[dict[str, Any]],
) -> None:
    objects = copy.deepcopy(staging)
    deployment = by_kind(objects, "Deployment")
    deployment["spec"]["replicas"] = "two"
    api = containers(deployment)[0]
    api["securityContext"]["readOnlyRootFS"] = True  # a typo strict mode must catch
    api["ports"][0]["containerPort"] = "8000"
    by_kind(objects, "ConfigMap")["data"]["PORT"] = 8000
    del by_kind(objects, "Service", "churnctl-api")["metadata"]["name"]
    report = validate_manifests(objects, "1.30")
    assert not report.ok
    deployment_errors = [e for e in report.errors if e.startswith("Deployment/churn/churnctl-api:")]
    assert len(deployment_errors) == 3
    assert any("spec.replicas: 'two' is not of type 'integer'" in e for e in report.errors)
    assert any(
        "spec.template.spec.containers[0].securityContext:" in e and "readOnlyRootFS" in e
        for e in report.errors
    )
    assert any("containers[0].ports[0].containerPort" in e for e in report.errors)
    assert any(e.startswith("ConfigMap/churn/churnctl-config: data.PORT:") for e in report.errors)
    assert "Service/churn/?: metadata.name: required field is missing" in report.errors
    assert all("\n" not in e for e in report.errors)
    # Without strict mode an unknown field passes (the API server would drop it silently).
    del api["securityContext"]["readOnlyRootFS"]
    loose = validate_manifests([deployment], "1.30", strict=False)
    assert len(loose.errors) == 2


def test_validation_warns_on_custom_resources_and_unpinned_images(
    staging: list[dict[str, Any]],
) -> None:
    objects = copy.deepcopy(staging)
    containers(by_kind(objects, "Deployment"))[0]["image"] = "ghcr.io/churnctl/churnctl:latest"
    objects.append(
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "api"}}
    )
    objects.append(copy.deepcopy(by_kind(staging, "ConfigMap")))
    report = validate_manifests(objects)
    assert report.errors == ["ConfigMap/churn/churnctl-config: defined more than once"]
    assert any("Rollout/api: no schema" in w for w in report.warnings)
    assert any("no pinned tag or digest" in w for w in report.warnings)


def test_validation_refuses_versions_it_has_no_schemas_for() -> None:
    with pytest.raises(UserError, match=r"no bundled Kubernetes schemas for version 1\.99"):
        validate_manifests([], "1.99")
    with pytest.raises(UserError, match=r"not MAJOR\.MINOR"):
        validate_manifests([], "latest")


def test_written_manifests_pass_the_kubernetes_validate_cli(
    tmp_path: Path, production: list[dict[str, Any]]
) -> None:
    path = write_manifests(production, tmp_path / "out")
    assert path == tmp_path / "out" / "manifests.yaml"
    assert [d for d in yaml.safe_load_all(path.read_text()) if d] == production
    # An independent second opinion: the kubernetes-validate CLI on the written file.
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("INFO") == len(production)


def test_options_reject_bad_values() -> None:
    assert KubectlDeployOptions.model_validate({"namespace": "churn", "overlay": "staging"})
    for bad in (
        {"namespace": "Churn_Prod"},
        {"image": "not an image"},
        {"kubernetes_version": "latest"},
        {"overlays": "staging"},
    ):
        with pytest.raises(ValueError):
            KubectlDeployOptions.model_validate(bad)


def test_deploy_modules_import_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import churnctl.cli.deploy, churnctl.backends.deploy_kubectl\n"
        "import churnctl.deploy.render, churnctl.deploy.validate\n"
        "import churnctl.deploy.diff, churnctl.deploy.apply\n"
        "heavy = {'kubernetes', 'kubernetes_validate', 'yaml', 'jsonschema', 'urllib3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_churnctl_help_does_not_import_kubernetes() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['churnctl', '--help']\n"
        "from churnctl.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted({'kubernetes', 'kubernetes_validate'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "deploy" in done.stdout
    assert done.stdout.strip().endswith("LOADED []")
