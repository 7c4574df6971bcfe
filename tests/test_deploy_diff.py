"""`deploy`'s diff is a server-side apply dry run: it shows what apply will do, removals included.

Against the kmock emulator with a real server's apply semantics (tests/kube_emulator.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from typer.testing import CliRunner

from churnctl.deploy.apply import FIELD_MANAGER, apply_objects, connect, diff_objects
from churnctl.deploy.diff import diff_object
from churnctl.deploy.render import containers, render
from tests.kube_emulator import Emulator, running_emulator

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"
API = "Deployment/churn/churnctl-api"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with running_emulator(tmp_path) as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


@pytest.fixture
def staging() -> list[dict[str, Any]]:
    return render("staging", namespace="churn", root=K8S)


def deployment_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment")


def changed_lines(diff: str, sign: str) -> list[str]:
    return [ln for ln in diff.splitlines() if ln.startswith(sign) and ln[1:2] != sign]


def test_a_field_removed_from_the_manifest_shows_as_removed(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    newer = copy.deepcopy(staging)
    deployment = deployment_of(newer)
    del deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    api = containers(deployment)[0]
    api["env"] = [e for e in api["env"] if e["name"] != "TMPDIR"]

    diffs = {d.id: d for d in diff_objects(cluster, newer)}
    assert [i for i, d in diffs.items() if d.action != "unchanged"] == [API]
    diff = diffs[API].diff
    assert diff.startswith(f"--- live/{API}\n+++ merged/{API}\n")
    assert changed_lines(diff, "+") == []
    removed = changed_lines(diff, "-")
    assert "-    app.kubernetes.io/managed-by: churnctl" in removed
    assert "-        - name: TMPDIR" in removed
    # The dry run stored nothing: the label is still there until apply.
    stored = emulator.stored("deployments", "churn", "churnctl-api")
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "churnctl"

    results = {r.kind: r.action for r in apply_objects(cluster, newer)}
    assert results["Deployment"] == "configured"
    stored = emulator.stored("deployments", "churn", "churnctl-api")
    assert "app.kubernetes.io/managed-by" not in stored["metadata"]["labels"]
    assert "TMPDIR" not in {e["name"] for e in containers(stored)[0]["env"]}
    assert {d.action for d in diff_objects(cluster, newer)} == {"unchanged"}


def test_fields_another_manager_set_are_kept_and_not_a_diff(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    live = emulator.stored("deployments", "churn", "churnctl-api")
    live["metadata"]["labels"]["team"] = "growth"  # `kubectl label`, say
    containers(live)[0]["env"].append({"name": "EXTRA", "value": "1"})  # a mutating webhook
    emulator.replace("deployments", "churn", "churnctl-api", live)

    # Server-side apply keeps fields churnctl never applied, so the diff must not show them.
    diffs = {d.id: d for d in diff_objects(cluster, staging)}
    assert diffs[API].action == "unchanged", diffs[API].diff
    apply_objects(cluster, staging)
    stored = emulator.stored("deployments", "churn", "churnctl-api")
    assert stored["metadata"]["labels"]["team"] == "growth"
    assert "EXTRA" in {e["name"] for e in containers(stored)[0]["env"]}


def test_the_diff_is_a_dry_run_apply_with_our_manager_and_force(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    before = len(emulator.requests("PATCH"))
    diff_objects(cluster, staging, force_conflicts=True)
    dry_runs = emulator.requests("PATCH")[before:]
    assert len(dry_runs) == len(staging)
    for request in dry_runs:
        assert request.params == {"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All"}
    diff_objects(cluster, staging)
    assert {"force" in r.params for r in emulator.requests("PATCH")[before + len(staging) :]} == {
        False
    }


def test_first_deploy_shows_the_manifests_of_objects_in_a_new_namespace(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    # Before the Namespace exists the server cannot dry-run what goes into it (404):
    # those are creates, shown as rendered; the Namespace itself is dry-run.
    diffs = diff_objects(connect(), staging)
    assert {d.action for d in diffs} == {"create"}
    assert diffs[0].diff.startswith("--- live/Namespace/churn\n+++ merged/Namespace/churn\n")
    assert all(f"+++ rendered/{d.id}\n" in d.diff for d in diffs[1:])
    assert emulator.namespaces == {}  # nothing created by the diff


def test_a_conflict_stops_the_deploy_before_anything_is_applied(
    emulator: Emulator, staging: list[dict[str, Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from churnctl.cli.main import app

    apply_objects(connect(), staging)
    path = re.compile(r"^/apis/apps/v1/namespaces/churn/deployments/churnctl-api$")
    conflict = kmock.KubernetesError(
        status=409, reason="Conflict", message='conflict with "kubectl-edit": .spec.replicas'
    )
    emulator.handler["patch", path] << conflict
    applied_before = [r for r in emulator.requests("PATCH") if "dryRun" not in r.params]
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    args = ["deploy", "--profile", "v1", "--workspace", str(tmp_path), "--image", "ghcr.io/x/y:2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{API}: fields owned by another manager would change" in result.output
    applied_after = [r for r in emulator.requests("PATCH") if "dryRun" not in r.params]
    assert applied_after == applied_before  # the diff failed: nothing half-applied


def test_server_maintained_fields_are_left_out() -> None:
    rendered = deployment_of(render("staging", namespace="churn", root=K8S))
    live = copy.deepcopy(rendered)
    live["metadata"].update(uid="1", resourceVersion="9", generation=3, creationTimestamp="x")
    live["metadata"]["managedFields"] = [{"manager": "churnctl", "time": "earlier"}]
    live["status"] = {"readyReplicas": 1}
    merged = copy.deepcopy(live)
    merged["metadata"].update(resourceVersion="10", generation=4)
    merged["metadata"]["managedFields"] = [{"manager": "churnctl", "time": "now"}]
    merged["status"] = {"readyReplicas": 0}
    assert diff_object(live, merged).action == "unchanged"
    del merged["metadata"]["labels"]["app.kubernetes.io/component"]
    changed = diff_object(live, merged)
    assert changed.action == "update"
    assert changed_lines(changed.diff, "-") == ["-    app.kubernetes.io/component: api"]
    assert diff_object(None, rendered, source="rendered").action == "create"
