"""The kmock emulator serving Argo Rollouts' kinds, and a stand-in for the Rollouts controller.

The emulator stores Rollouts, AnalysisTemplates and AnalysisRuns (with the Rollout's status
subresource) but runs no controller. `Controller` writes what the Argo Rollouts controller
writes, behind the API's back (Emulator.replace): the pod-template hash of a new revision, the
current step, pause conditions, AnalysisRuns and their measurements, the stable revision once
the last step is done, and the reaction to the `abort`/`promoteFull` fields a client patches.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tests.kube_emulator import Emulator

ROLLOUT_RESOURCES = (
    ("rollouts", "Rollout", ["status", "scale"]),
    ("analysistemplates", "AnalysisTemplate", []),
    ("analysisruns", "AnalysisRun", []),
)


def serve_argo_rollouts(emulator: Emulator) -> None:
    """Discovery answers for argoproj.io/v1alpha1, as after installing the Argo CRDs."""
    for plural, kind, subresources in ROLLOUT_RESOURCES:
        emulator.handler.resources[f"argoproj.io/v1alpha1/{plural}"] = {
            "kind": kind, "namespaced": True, "singular": kind.lower(),
            "verbs": ["get", "list", "create", "patch", "update", "delete", "watch"],
            "subresources": subresources,
        }


def template_hash(rollout: dict[str, Any]) -> str:
    text = json.dumps(rollout["spec"]["template"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class Controller:
    """What the Argo Rollouts controller would write, one reconcile at a time."""

    def __init__(self, emulator: Emulator, namespace: str = "churn",
                 name: str = "churnctl-api") -> None:
        self.emulator, self.namespace, self.name = emulator, namespace, name

    def rollout(self) -> dict[str, Any]:
        return self.emulator.stored("rollouts", self.namespace, self.name)

    def _write(self, rollout: dict[str, Any]) -> None:
        self.emulator.replace("rollouts", self.namespace, self.name, rollout)

    def settle_stable(self) -> None:
        """A first deploy: no stable revision to compare with, so the controller skips steps."""
        rollout = self.rollout()
        revision = template_hash(rollout)
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        rollout["status"] = {"phase": "Healthy", "stableRS": revision, "currentPodHash": revision,
                             "currentStepIndex": len(steps)}
        self._write(rollout)

    def begin_canary(self) -> None:
        """A new pod template: a canary revision at the first steps, analysis running."""
        rollout = self.rollout()
        rollout.setdefault("status", {}).update(
            phase="Progressing", currentPodHash=template_hash(rollout), currentStepIndex=1)
        self._write(rollout)

    def pause_after_analysis(self, step: int, values: dict[str, str]) -> None:
        """The canary ran `step`'s analysis (measurements `values`) and paused after it."""
        rollout = self.rollout()
        status = rollout.setdefault("status", {})
        status.update(phase="Paused", currentPodHash=template_hash(rollout),
                      currentStepIndex=step + 1, controllerPause=True,
                      pauseConditions=[{"reason": "CanaryPauseStep",
                                        "startTime": "2026-01-01T00:00:00Z"}])
        status["canary"] = {"currentStepAnalysisRunStatus": {"status": "Successful"}}
        self._write(rollout)
        self.add_run(f"{self.name}-{status['currentPodHash']}-{step}", "Successful", values)

    def add_run(self, name: str, phase: str, values: dict[str, str]) -> None:
        run = {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "namespace": self.namespace,
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1",
                                              "kind": "Rollout", "name": self.name,
                                              "uid": "x"}]},
            "status": {"phase": phase, "metricResults": [
                {"name": metric, "phase": phase, "count": 1,
                 "failed": int(phase == "Failed"),
                 "measurements": [{"phase": phase, "value": value}]}
                for metric, value in values.items()]},
        }
        self.emulator.handler.objects[
            ("argoproj.io/v1alpha1/analysisruns", self.namespace, name)] = run

    def reconcile(self) -> None:
        """React to a client's patch: promote (step moves on), abort, promoteFull."""
        rollout = copy.deepcopy(self.rollout())
        status = rollout.setdefault("status", {})
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        if status.get("abort"):
            status.update(phase="Degraded", message="RolloutAborted: Rollout aborted update to "
                          f"revision {status.get('currentPodHash')}", pauseConditions=None)
        elif status.get("promoteFull") or status.get("currentStepIndex", 0) >= len(steps):
            status.update(phase="Healthy", stableRS=status.get("currentPodHash"),
                          currentStepIndex=len(steps), promoteFull=None, pauseConditions=None)
        elif not status.get("pauseConditions"):
            status.update(phase="Progressing", controllerPause=False)
        self._write(rollout)
