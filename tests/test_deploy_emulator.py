"""Diff and server-side apply against the kmock Kubernetes API emulator (real HTTP, real client).

kmock is an emulator, not an API server: no validation, no defaulting, no conflicts. The fixture
(tests/kube_emulator.py) gives it a real server's server-side apply: create on apply, fields a
manager stops applying are removed, dryRun=All stores nothing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock  # the emulator is a test requirement: missing, these tests must fail, not skip
import pytest
import yaml
from typer.testing import CliRunner

from churnctl.deploy.apply import (
    APPLY_PATCH,
    FIELD_MANAGER,
    apply_objects,
    connect,
    diff_objects,
    read_live,
)
from churnctl.deploy.render import containers, render
from churnctl.errors import UserError
from tests.kube_emulator import Emulator, running_emulator

pytestmark = [
    pytest.mark.emulator,
    # kmock 0.8 loads its bundled resource list with a deprecated importlib call.
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with running_emulator(tmp_path) as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


@pytest.fixture(scope="module")
def staging() -> list[dict[str, Any]]:
    return render("staging", namespace="churn", root=K8S)


def test_apply_creates_every_object_then_nothing_changes(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    assert cluster.context == "kmock"
    diffs = diff_objects(cluster, staging)
    assert [d.action for d in diffs] == ["create"] * len(staging)
    assert diffs[0].kind == "Namespace"

    results = apply_objects(cluster, staging, diffs=diffs)
    assert [r.action for r in results] == ["created"] * len(staging)
    deployment = emulator.stored("deployments", "churn", "churnctl-api")
    assert containers(deployment)[0]["image"] == "ghcr.io/churnctl/churnctl:0.1.0"
    assert emulator.stored("cronjobs", "churn", "churnctl-retrain")["spec"]["schedule"]
    assert emulator.namespaces["churn"]["metadata"]["name"] == "churn"
    # The result is the server's answer to the apply (with the uid it gave), not a re-read.
    result = next(r for r in results if r.kind == "Deployment")
    assert result.live == deployment
    assert result.live["metadata"]["uid"]

    # Server-side apply only: PATCH, apply-patch content type, our field manager, no POST.
    assert emulator.requests("POST") == []
    applies = [r for r in emulator.requests("PATCH") if "dryRun" not in r.params]
    assert len(applies) == len(staging)
    for request in emulator.requests("PATCH"):
        assert request.headers["Content-Type"] == APPLY_PATCH
        assert request.params["fieldManager"] == FIELD_MANAGER
        assert "force" not in request.params

    again = diff_objects(cluster, staging)
    assert {d.action for d in again} == {"unchanged"}
    assert all(d.diff == "" for d in again)
    assert {r.action for r in apply_objects(cluster, staging)} == {"unchanged"}


def test_diff_shows_only_what_the_new_render_changes(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    newer = render("staging", namespace="churn", image="ghcr.io/churnctl/churnctl:0.2.0", root=K8S)
    diffs = {d.id: d for d in diff_objects(cluster, newer)}
    changed = [d for d in diffs.values() if d.action != "unchanged"]
    assert [d.id for d in changed] == ["Deployment/churn/churnctl-api"]
    minus = [ln for ln in changed[0].diff.splitlines() if ln.startswith("-") and ln[1:2] != "-"]
    plus = [ln for ln in changed[0].diff.splitlines() if ln.startswith("+") and ln[1:2] != "+"]
    assert minus == ["-        image: ghcr.io/churnctl/churnctl:0.1.0"]
    assert plus == ["+        image: ghcr.io/churnctl/churnctl:0.2.0"]

    results = {f"{r.kind}/{r.name}": r.action for r in apply_objects(cluster, newer)}
    assert results["Deployment/churnctl-api"] == "configured"
    assert results["Service/churnctl-api"] == "unchanged"
    live = emulator.stored("deployments", "churn", "churnctl-api")
    assert containers(live)[0]["image"] == "ghcr.io/churnctl/churnctl:0.2.0"


def test_fields_the_server_adds_are_not_a_diff(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    deployment = next(o for o in staging if o["kind"] == "Deployment")
    live = read_live(cluster, deployment)
    assert live is not None
    # What a real API server adds: identity, managedFields, defaults, status.
    live = copy.deepcopy(live)
    live["metadata"].update(uid="0b8c", resourceVersion="42", generation=1)
    live["metadata"]["managedFields"] = [{"manager": FIELD_MANAGER, "operation": "Apply"}]
    live["spec"]["progressDeadlineSeconds"] = 600
    containers(live)[0]["terminationMessagePolicy"] = "File"
    live["status"] = {"replicas": 1, "readyReplicas": 1}
    for key in list(emulator.handler.objects):
        if key[0].plural == "deployments":
            emulator.handler.objects[key] = live
    assert (read_live(cluster, deployment) or {})["status"]["readyReplicas"] == 1
    (diff,) = [d for d in diff_objects(cluster, [deployment])]
    assert diff.action == "unchanged", diff.diff


def test_conflicts_say_how_to_take_over(emulator: Emulator, staging: list[dict[str, Any]]) -> None:
    cluster = connect()
    apply_objects(cluster, staging)
    path = re.compile(r"^/apis/apps/v1/namespaces/churn/deployments/churnctl-api$")
    conflict = kmock.KubernetesError(
        status=409, reason="Conflict", message='conflict with "kubectl-edit": .spec.replicas'
    )
    emulator.handler["patch", path] << conflict
    with pytest.raises(UserError) as info:
        apply_objects(cluster, staging)
    message = str(info.value)
    assert message.startswith("Deployment/churn/churnctl-api: fields owned by another manager")
    assert message.endswith("re-run with --force-conflicts to take them over")
    assert "\n" not in message


def test_a_refused_apply_is_reported_not_retried_as_a_create(
    emulator: Emulator, staging: list[dict[str, Any]]
) -> None:
    # A real server answers 404 to an apply whose namespace does not exist (yet).
    cluster = connect()
    path = re.compile(r"^/apis/apps/v1/namespaces/churn/deployments/churnctl-api$")
    gone = kmock.KubernetesError(
        status=404, reason="NotFound", message='namespaces "churn" not found'
    )
    emulator.handler["patch", path] << gone
    with pytest.raises(UserError) as info:
        apply_objects(cluster, staging)
    assert str(info.value) == (
        "Deployment/churn/churnctl-api: the cluster refused it: "
        'HTTP 404 NotFound: namespaces "churn" not found'
    )
    assert emulator.requests("POST") == []


def test_force_conflicts_is_sent(emulator: Emulator, staging: list[dict[str, Any]]) -> None:
    cluster = connect()
    apply_objects(cluster, staging, force_conflicts=True)
    assert {r.params.get("force") for r in emulator.requests("PATCH")} == {"true"}


def test_unknown_kind_is_one_line(emulator: Emulator) -> None:
    cluster = connect()
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "api", "namespace": "churn"},
    }
    with pytest.raises(UserError, match=r"serves no Rollout in argoproj.io/v1alpha1"):
        diff_objects(cluster, [rollout])


def test_cli_deploys_then_reports_unchanged(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churnctl.cli.main import app

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    runner = CliRunner()
    args = ["deploy", "--profile", "v1", "--workspace", str(tmp_path), "--context", "kmock"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "diff: 10 to create, 0 to update, 0 unchanged" in first.output
    assert "+++ rendered/Deployment/churn/churnctl-api" in first.output
    assert first.output.count("created") == 10

    second = runner.invoke(app, [*args, "--json", "--image", "ghcr.io/churnctl/churnctl:0.3.0"])
    assert second.exit_code == 0, second.output
    data = json.loads(second.stdout)
    actions = {f"{a['kind']}/{a['name']}": a["action"] for a in data["applied"]}
    assert actions.pop("Deployment/churnctl-api") == "configured"
    assert set(actions.values()) == {"unchanged"}
    assert data["context"] == "kmock" and data["dry_run"] is False
    (changed,) = [d for d in data["diff"] if d["action"] == "update"]
    assert "+        image: ghcr.io/churnctl/churnctl:0.3.0" in changed["diff"]

    # -o yaml after an apply: the objects as the server answered, nothing else on stdout.
    third = runner.invoke(app, [*args, "-o", "yaml", "--image", "ghcr.io/churnctl/churnctl:0.3.0"])
    assert third.exit_code == 0, third.output
    docs = list(yaml.safe_load_all(third.stdout))
    assert len(docs) == len(data["applied"])
    assert all(d["metadata"]["uid"] for d in docs)
    assert next(d for d in docs if d["kind"] == "Deployment") == emulator.stored(
        "deployments", "churn", "churnctl-api"
    )
    assert "diff: 0 to create, 0 to update" in third.stderr
