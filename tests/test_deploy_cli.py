"""`churnctl deploy` without a cluster: --dry-run, --out, --json, and one-line errors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from churnctl.cli.main import app
from churnctl.deploy.render import render

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No kubeconfig, no profile from the environment, run from the repository."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    monkeypatch.delenv("CHURNCTL_K8S_DIR", raising=False)
    monkeypatch.chdir(ROOT)
    return tmp_path


def deploy(*args: str, workspace: Path) -> Result:
    return runner.invoke(app, ["deploy", "--workspace", str(workspace), *args])


def test_help_shows_examples() -> None:
    result = runner.invoke(app, ["deploy", "--help"])
    assert result.exit_code == 0
    for flag in ("--dry-run", "--overlay", "--namespace", "--context", "--image", "--out"):
        assert flag in result.output
    assert "churnctl deploy --dry-run" in result.output


def test_dry_run_needs_no_cluster(isolated: Path) -> None:
    result = deploy("--dry-run", "--profile", "v1", workspace=isolated)
    assert result.exit_code == 0, result.output
    assert "valid for Kubernetes 1.30" in result.output
    for name in ("churnctl-api", "churnctl-batch-score", "churnctl-retrain", "churnctl-workspace"):
        assert name in result.output


def test_dry_run_json_and_out(isolated: Path) -> None:
    out = isolated / "build"
    result = deploy(
        "--dry-run", "--json", "--overlay", "production", "--namespace", "churn-prod",
        "--image", "ghcr.io/me/churnctl:1.2.0", "--out", str(out), workspace=isolated,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dry_run"] is True
    assert data["profile"] == "v1"
    assert (data["overlay"], data["namespace"]) == ("production", "churn-prod")
    assert data["errors"] == [] and data["warnings"] == []
    kinds = {o["kind"] for o in data["objects"]}
    assert "PodDisruptionBudget" in kinds
    docs = [d for d in yaml.safe_load_all((out / "manifests.yaml").read_text()) if d]
    assert len(docs) == len(data["objects"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == "churn-prod"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "ghcr.io/me/churnctl:1.2.0"
    )


def test_dry_run_output_yaml_is_the_manifests_and_nothing_else(isolated: Path) -> None:
    # An unpinned image makes a warning: it must go to stderr, not into the YAML stream.
    image = "ghcr.io/me/churnctl:latest"
    out = isolated / "build"
    result = deploy(
        "--dry-run", "-o", "yaml", "--profile", "v1", "--image", image, "--out", str(out),
        workspace=isolated,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = render("staging", namespace="churn", image=image, root=ROOT / "infra" / "k8s")
    assert list(yaml.safe_load_all(result.stdout)) == expected
    assert result.stdout.startswith("apiVersion: v1\nkind: Namespace\n")
    assert "no pinned tag or digest" in result.stderr
    assert f"wrote {out / 'manifests.yaml'}" in result.stderr
    assert (out / "manifests.yaml").read_text() == result.stdout


def test_dry_run_output_json_is_a_v1_list(isolated: Path) -> None:
    result = deploy(
        "--dry-run", "--output", "json", "--overlay", "production", "-n", "churn-prod",
        workspace=isolated,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = render("production", namespace="churn-prod", root=ROOT / "infra" / "k8s")
    assert json.loads(result.stdout) == {"apiVersion": "v1", "kind": "List", "items": expected}
    assert result.stderr == ""


def test_output_format_and_json_are_checked(isolated: Path) -> None:
    result = deploy("--dry-run", "-o", "xml", workspace=isolated)
    assert result.exit_code == 2
    assert "'xml' is not one of 'yaml', 'json'" in result.output
    result = deploy("--dry-run", "-o", "yaml", "--json", workspace=isolated)
    assert result.exit_code == 2
    assert "use one of them" in result.output
    assert result.stdout == ""


def test_profile_options_feed_the_deploy(isolated: Path) -> None:
    profile = isolated / "team.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "team",
                "extends": "v1",
                "stages": {
                    "deploy": {
                        "backend": "kubectl",
                        "options": {"namespace": "team-churn", "overlay": "production"},
                    }
                },
            }
        )
    )
    result = deploy("--dry-run", "--json", "--profile", str(profile), workspace=isolated)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["namespace"], data["overlay"]) == ("team-churn", "production")
    # A flag wins over the profile.
    result = deploy(
        "--dry-run", "--json", "--profile", str(profile), "--overlay", "staging",
        workspace=isolated,
    )  # fmt: skip
    assert json.loads(result.stdout)["overlay"] == "staging"


def test_without_a_cluster_the_error_is_one_line(isolated: Path) -> None:
    result = deploy("--profile", "v1", workspace=isolated)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: no Kubernetes cluster reachable (context current): ")
    assert "no kubeconfig at" in lines[0]
    assert lines[0].endswith("use --dry-run to render and validate only")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_cluster_is_one_line(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = isolated / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}
                ],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
                "current-context": "gone",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = deploy("--context", "gone", workspace=isolated)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: no Kubernetes cluster reachable (context gone): http://")
    # An unknown context is a kubeconfig problem, reported the same way.
    result = deploy("--context", "nope", workspace=isolated)
    assert result.exit_code == 2
    assert "no Kubernetes cluster reachable (context nope)" in result.output


def test_bad_flags_are_reported_not_raised(isolated: Path) -> None:
    result = deploy("--dry-run", "--image", "Not An Image", "-n", "Bad_NS", workspace=isolated)
    assert result.exit_code == 2
    assert "error: deploy option image: 'Not An Image' is not an image reference" in result.output
    assert "error: deploy option namespace: 'Bad_NS' is not a valid namespace" in result.output
    result = deploy("--dry-run", "--overlay", "qa", workspace=isolated)
    assert result.exit_code == 2
    assert "unknown overlay 'qa'" in result.output


def test_invalid_manifests_list_every_problem(isolated: Path) -> None:
    overlay = isolated / "broken-overlay"
    overlay.mkdir()
    base = os.path.relpath(ROOT / "infra" / "k8s" / "base", overlay)
    patch = [
        {"op": "replace", "path": "/spec/replicas", "value": "two"},
        {"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": 1},
    ]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [base],
                "patches": [{"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(patch)}],
            }
        )
    )
    result = deploy("--dry-run", "--overlay", str(overlay), workspace=isolated)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: 2 problem(s) in the rendered manifests")
    assert lines[1].startswith("error: Deployment/churn/churnctl-api: spec.replicas: ")
    assert lines[2].startswith(
        "error: Deployment/churn/churnctl-api: spec.template.spec.containers[0].imagePullPolicy"
    )
    result = deploy("--dry-run", "--json", "--overlay", str(overlay), workspace=isolated)
    assert result.exit_code == 2
    assert len(json.loads(result.stdout)["errors"]) == 2
