"""Diff and server-side apply against the kmock Kubernetes API emulator (real HTTP, real client).

kmock is an emulator, not an API server: no validation, no defaulting, no managedFields, dict
merges for every patch type. Where it differs from a real server the fixture or the test says so.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
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

pytestmark = [
    pytest.mark.emulator,
    # kmock 0.8 loads its bundled resource list with a deprecated importlib call.
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "infra" / "k8s"


@dataclass
class Emulator:
    handler: Any
    url: str
    kubeconfig: Path
    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stored(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        for (resource, ns, obj_name), obj in self.handler.objects.items():
            if (resource.plural, ns, obj_name) == (plural, namespace, name):
                return dict(obj.raw)
        raise KeyError((plural, namespace, name))

    def requests(self, method: str) -> list[Any]:
        # Iterating a kmock handler yields the requests it received.
        return [r for r in self.handler if r.method.value == method]


def _namespace_handler(namespaces: dict[str, dict[str, Any]]) -> Any:
    # kmock 0.8 cannot parse cluster-scoped /api/v1/namespaces/NAME paths (it reads NAME as a
    # namespace), so Namespaces are served here with a real server's apply semantics:
    # PATCH with apply-patch creates or updates, GET returns the object or 404.
    def serve(request: Any) -> dict[str, Any]:
        name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method.value == "PATCH":
            namespaces.setdefault(name, {}).update(request.data)
        if name not in namespaces:
            raise kmock.KubernetesObjectNotFoundError()
        return namespaces[name]

    return serve


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A KubernetesEmulator on a free 127.0.0.1 port, run by its own event loop thread."""
    ready = threading.Event()
    box: dict[str, Any] = {}
    namespaces: dict[str, dict[str, Any]] = {}

    async def serve() -> None:
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            # The built-in resource list (K3s): discovery answers for apps/v1, batch/v1, ...
            handler.resources.load_bundled()
            handler[re.compile(r"^/api/v1/namespaces/[^/]+$")] << _namespace_handler(namespaces)
            box.update(handler=handler, url=str(server.url).rstrip("/"), stop=asyncio.Event())
            ready.set()
            await box["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(15), "kmock did not start"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": box["url"]}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
                "current-context": "kmock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:
        yield Emulator(box["handler"], box["url"], kubeconfig, namespaces)
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()


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
    # The emulator's create answer is not trusted: every result is re-read from the server.
    deployment = emulator.stored("deployments", "churn", "churnctl-api")
    assert containers(deployment)[0]["image"] == "ghcr.io/churnctl/churnctl:0.1.0"
    assert emulator.stored("cronjobs", "churn", "churnctl-retrain")["spec"]["schedule"]
    assert emulator.namespaces["churn"]["metadata"]["name"] == "churn"
    result = next(r for r in results if r.kind == "Deployment")
    assert result.live["spec"] == deployment["spec"]

    # Server-side apply: PATCH, apply-patch content type, our field manager on every object.
    patches = emulator.requests("PATCH")
    assert len(patches) == len(staging)
    for request in patches:
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
    assert "diff: 9 to create, 0 to update, 0 unchanged" in first.output
    assert "+++ rendered/Deployment/churn/churnctl-api" in first.output
    assert first.output.count("created") == 9

    second = runner.invoke(app, [*args, "--json", "--image", "ghcr.io/churnctl/churnctl:0.3.0"])
    assert second.exit_code == 0, second.output
    data = json.loads(second.stdout)
    actions = {f"{a['kind']}/{a['name']}": a["action"] for a in data["applied"]}
    assert actions.pop("Deployment/churnctl-api") == "configured"
    assert set(actions.values()) == {"unchanged"}
    assert data["context"] == "kmock" and data["dry_run"] is False
    (changed,) = [d for d in data["diff"] if d["action"] == "update"]
    assert "+        image: ghcr.io/churnctl/churnctl:0.3.0" in changed["diff"]
