"""The canary lifecycle against the kmock emulator: deploy, `--canary`, status, promote, abort,
retry, with the same merge patches on the status subresource as kubectl-argo-rollouts.

The emulator stores Argo's kinds; tests/rollouts_cluster.Controller plays the controller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from churnctl.cli.main import app
from churnctl.deploy.rollouts.control import MERGE_PATCH, promote_patches
from tests.kube_emulator import Emulator, running_emulator
from tests.rollouts_cluster import Controller, serve_argo_rollouts

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]
ROOT = Path(__file__).resolve().parents[1]
STATUS_PATH = "/apis/argoproj.io/v1alpha1/namespaces/churn/rollouts/churnctl-api/status"


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.chdir(ROOT)  # infra/k8s of the checkout
    monkeypatch.delenv("CHURNCTL_PROFILE", raising=False)
    with running_emulator(tmp_path) as running:
        serve_argo_rollouts(running)
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


def churnctl(*args: str, workspace: Path) -> Result:
    return CliRunner().invoke(app, [*args, "--profile", "v4", "--workspace", str(workspace)])


def status_patches(emulator: Emulator) -> list[dict[str, Any]]:
    return [r.data for r in emulator.requests("PATCH") if str(r.url.path) == STATUS_PATH]


def test_canary_lifecycle_start_status_promote(emulator: Emulator, tmp_path: Path) -> None:
    controller = Controller(emulator)
    first = churnctl("deploy", workspace=tmp_path)
    assert first.exit_code == 0, first.output
    rollout = controller.rollout()
    assert rollout["kind"] == "Rollout"
    assert emulator.stored("analysistemplates", "churn", "churnctl-canary-model")
    controller.settle_stable()
    stable = controller.rollout()["status"]["stableRS"]

    # Nothing new: a canary of the same template is refused, and nothing is written.
    before = len(emulator.requests("PATCH"))
    same = churnctl("deploy", "--canary", workspace=tmp_path)
    assert same.exit_code == 2
    assert "nothing to roll out" in same.output
    assert len(emulator.requests("PATCH")) == before

    started = churnctl("deploy", "--canary", "--image", "ghcr.io/churnctl/churnctl:0.2.0",
                       workspace=tmp_path)
    assert started.exit_code == 0, started.output
    assert "canary started" in started.output
    live = controller.rollout()
    assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.2.0")
    assert live["status"]["stableRS"] == stable  # the apply leaves the controller's status

    controller.pause_after_analysis(1, {"error-ratio": "[0]", "score-psi": "[0.013]"})
    waited = churnctl("deploy", "status", "--watch", "--interval", "0.1", "--timeout", "0.5",
                      workspace=tmp_path)
    assert waited.exit_code == 2 and "still Paused after 0.5s of --watch" in waited.output
    assert "weights canary 10% / stable 90%" in waited.output
    shown = churnctl("deploy", "status", "--json", workspace=tmp_path)
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert summary["phase"] == "Paused" and summary["paused"]
    assert summary["step"] == 2 and summary["steps"] == 6
    assert summary["current_step"] == "pause (until promoted)"
    assert summary["weights"] == {"canary": 10, "stable": 90}
    assert summary["stable_revision"] == stable and summary["canary_revision"] != stable
    (run,) = summary["analysis_runs"]
    assert run["phase"] == "Successful"
    assert {m["name"]: m["values"] for m in run["metrics"]}["score-psi"] == ["[0.013]"]

    # A second canary while one is in progress: refused, nothing changed.
    again = churnctl("deploy", "--canary", "--image", "ghcr.io/churnctl/churnctl:0.3.0",
                     workspace=tmp_path)
    assert again.exit_code == 2 and "already has a canary in progress" in again.output
    assert controller.rollout()["spec"]["template"] == live["spec"]["template"]

    promoted = churnctl("deploy", "promote", workspace=tmp_path)
    assert promoted.exit_code == 0, promoted.output
    assert "rollout 'churnctl-api' promoted" in promoted.output
    # The plugin's patch for a rollout paused at a step: clear the pause conditions.
    assert status_patches(emulator)[-1] == {"status": {"pauseConditions": None}}
    request = [r for r in emulator.requests("PATCH") if str(r.url.path) == STATUS_PATH][-1]
    assert request.headers["Content-Type"] == MERGE_PATCH
    assert not controller.rollout()["status"].get("pauseConditions")

    full = churnctl("deploy", "promote", "--full", workspace=tmp_path)
    assert full.exit_code == 0, full.output
    assert status_patches(emulator)[-1] == {"status": {"promoteFull": True}}
    controller.reconcile()
    done = json.loads(churnctl("deploy", "status", "--json", workspace=tmp_path).stdout)
    assert done["phase"] == "Healthy" and done["weights"] == {"canary": 0, "stable": 100}
    watched = churnctl("deploy", "status", "--watch", workspace=tmp_path)  # finished: returns
    assert watched.exit_code == 0 and "Healthy" in watched.output

    # Bad input: promote or abort with nothing in progress is one line, exit 2, no patch.
    count = len(status_patches(emulator))
    for verb in ("promote", "abort", "retry"):
        refused = churnctl("deploy", verb, workspace=tmp_path)
        assert refused.exit_code == 2, refused.output
        assert len([ln for ln in refused.output.splitlines() if ln.strip()]) == 1
    assert len(status_patches(emulator)) == count


def test_abort_then_retry(emulator: Emulator, tmp_path: Path) -> None:
    controller = Controller(emulator)
    assert churnctl("deploy", workspace=tmp_path).exit_code == 0
    controller.settle_stable()
    started = churnctl("deploy", "--canary", "--image", "ghcr.io/churnctl/churnctl:0.2.0",
                       workspace=tmp_path)
    assert started.exit_code == 0, started.output
    controller.begin_canary()
    controller.add_run("churnctl-api-canary-1", "Failed", {"score-psi": "[0.9]"})

    aborted = churnctl("deploy", "abort", workspace=tmp_path)
    assert aborted.exit_code == 0, aborted.output
    assert status_patches(emulator)[-1] == {"status": {"abort": True}}
    controller.reconcile()
    summary = json.loads(churnctl("deploy", "status", "--json", workspace=tmp_path).stdout)
    assert summary["aborted"] and summary["phase"] == "Degraded"
    assert summary["weights"]["canary"] == 0
    assert summary["analysis_runs"][0]["phase"] == "Failed"

    twice = churnctl("deploy", "abort", workspace=tmp_path)
    assert twice.exit_code == 2 and "already aborted" in twice.output
    promote = churnctl("deploy", "promote", workspace=tmp_path)
    assert promote.exit_code == 2 and "is aborted" in promote.output

    retried = churnctl("deploy", "retry", workspace=tmp_path)
    assert retried.exit_code == 0, retried.output
    assert status_patches(emulator)[-1] == {"status": {"abort": False}}


def test_status_without_a_rollout_is_one_line(emulator: Emulator, tmp_path: Path) -> None:
    result = churnctl("deploy", "status", workspace=tmp_path)
    assert result.exit_code == 2
    assert "no Rollout churnctl-api in namespace churn" in result.output


def test_promote_patches_follow_the_plugin() -> None:
    """getPatches() of kubectl-argo-rollouts promote, case by case."""
    steps = [{"setWeight": 10}, {"analysis": {}}, {"pause": {}}, {"setWeight": 50}]
    base = {"spec": {"strategy": {"canary": {"steps": steps}}},
            "status": {"currentPodHash": "b", "stableRS": "a", "currentStepIndex": 1}}
    # In the middle of an analysis step: skip to the next step.
    assert promote_patches(base, full=False)[1] == {
        "status": {"pauseConditions": None, "currentStepIndex": 2}}
    paused = json.loads(json.dumps(base))
    paused["status"]["pauseConditions"] = [{"reason": "CanaryPauseStep"}]
    assert promote_patches(paused, full=False)[1] == {"status": {"pauseConditions": None}}
    inconclusive = json.loads(json.dumps(paused))
    inconclusive["status"].update(controllerPause=True, canary={
        "currentStepAnalysisRunStatus": {"status": "Inconclusive"}})
    assert promote_patches(inconclusive, full=False)[1] == {"status": {
        "pauseConditions": None, "controllerPause": False, "currentStepIndex": 2}}
    spec_paused = json.loads(json.dumps(base))
    spec_paused["spec"]["paused"] = True
    assert promote_patches(spec_paused, full=False)[0] == {"spec": {"paused": False}}
    assert promote_patches(base, full=True)[:2] == (None, {"status": {"promoteFull": True}})


def test_a_model_canary_in_one_region_pins_a_registered_version(
    emulator: Emulator, finished_workspace: Path
) -> None:
    from tests.model_variants import register_shifted

    assert register_shifted(finished_workspace) == 2
    controller = Controller(emulator)
    first = churnctl("deploy", "--region", "eu-west-1", workspace=finished_workspace)
    assert first.exit_code == 0, first.output
    controller.settle_stable()
    before = controller.rollout()

    unknown = churnctl("deploy", "--canary", "--model-version", "9", "--region", "eu-west-1",
                       workspace=finished_workspace)
    assert unknown.exit_code == 2
    assert "--model-version 9 is not in the registry" in unknown.output
    assert controller.rollout() == before  # nothing changed

    started = churnctl("deploy", "--canary", "--model-version", "2", "--region", "eu-west-1",
                       workspace=finished_workspace)
    assert started.exit_code == 0, started.output
    live = controller.rollout()
    assert live["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "--model-version", "2"]
    assert live["metadata"]["labels"]["churnctl.io/region"] == "eu-west-1"
    controller.begin_canary()
    summary = json.loads(churnctl("deploy", "status", "--json", "--region", "eu-west-1",
                                  workspace=finished_workspace).stdout)
    assert summary["model_version"] == 2 and summary["canary_revision"]
