"""Read a Rollout's progress and steer it as the kubectl-argo-rollouts plugin does.

promote, abort and retry are JSON merge patches on the Rollout's `status` subresource (and, for
a paused spec, on the object), with the same bodies as pkg/kubectl-argo-rollouts/cmd/promote,
abort and retry of Argo Rollouts ARGO_ROLLOUTS_VERSION. Like the plugin, a 404 on the
subresource (a controller older than v0.10, without it) falls back to patching the object.
Unlike the plugin, churnctl refuses what cannot do anything (promote with no canary in
progress, abort of a finished rollout) with one line and exit code 2, changing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from churnctl.deploy.apply import ApiError, Cluster
from churnctl.deploy.rollouts import ROLLOUTS_API
from churnctl.errors import UserError

MERGE_PATCH = "application/merge-patch+json"
ABORT_PATCH = {"status": {"abort": True}}
RETRY_PATCH = {"status": {"abort": False}}


def rollout_path(namespace: str, name: str) -> str:
    return f"/apis/{ROLLOUTS_API}/namespaces/{namespace}/rollouts/{name}"


def get_rollout(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cluster.request("GET", rollout_path(namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            raise UserError(f"no Rollout {name} in namespace {namespace} at {cluster.host}: "
                            "start one with `churnctl deploy --profile v4`") from None
        raise UserError(f"cannot read Rollout {namespace}/{name}: {exc}") from None


def steps_of(rollout: dict[str, Any]) -> list[dict[str, Any]]:
    return (((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get(
        "steps") or []


def current_step_index(rollout: dict[str, Any]) -> int | None:
    """utils/replicaset.GetCurrentCanaryStep: None without steps, else the index (0 if unset)."""
    if not steps_of(rollout):
        return None
    index = (rollout.get("status") or {}).get("currentStepIndex")
    return int(index) if index is not None else 0


def in_progress(rollout: dict[str, Any]) -> bool:
    """A new revision that is not yet the stable one (what promote and abort act on)."""
    status = rollout.get("status") or {}
    current, stable = status.get("currentPodHash"), status.get("stableRS")
    return bool(current) and current != stable


def promote_patches(rollout: dict[str, Any], full: bool) -> tuple[dict | None, dict | None,
                                                                   dict]:
    """(spec patch, status patch, unified patch): getPatches() of the plugin's promote."""
    spec = rollout.get("spec") or {}
    status = rollout.get("status") or {}
    paused = bool(spec.get("paused"))
    spec_patch = status_patch = None
    if full:
        if paused:
            spec_patch = {"spec": {"paused": False}}
        if status.get("currentPodHash") != status.get("stableRS"):
            status_patch = {"status": {"promoteFull": True}}
        return spec_patch, status_patch, {"spec": {"paused": False},
                                          "status": {"promoteFull": True}}
    unified: dict[str, Any] = {"spec": {"paused": False}, "status": {"pauseConditions": None}}
    if paused:
        spec_patch = {"spec": {"paused": False}}
    steps, index = steps_of(rollout), current_step_index(rollout)
    analysis = ((status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {})
    inconclusive = analysis.get("status") == "Inconclusive"
    if inconclusive and status.get("pauseConditions") and status.get("controllerPause"):
        if index is not None:
            index = index + 1 if index < len(steps) else index
            status_patch = {"status": {"pauseConditions": None, "controllerPause": False,
                                       "currentStepIndex": index}}
    elif status.get("pauseConditions"):
        status_patch = {"status": {"pauseConditions": None}}
    elif index is not None:
        # Promoting during an analysis or experiment step: skip to the next step.
        index = index + 1 if index < len(steps) else index
        status_patch = {"status": {"pauseConditions": None, "currentStepIndex": index}}
        unified = {"spec": {"paused": False},
                   "status": {"pauseConditions": None, "currentStepIndex": index}}
    return spec_patch, status_patch, unified


def _merge_patch(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    # A dict: the client encodes it as JSON (a str would be encoded twice); None stays null.
    return cluster.request("PATCH", path, body=body, content_type=MERGE_PATCH)


def _patch_status(cluster: Cluster, namespace: str, name: str, body: dict[str, Any],
                  unified: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Patch the status subresource; on 404 the object itself. Returns (rollout, patches sent)."""
    path = rollout_path(namespace, name)
    try:
        return _merge_patch(cluster, f"{path}/status", body), [body]
    except ApiError as exc:
        if exc.status != 404:
            raise UserError(f"Rollout {namespace}/{name}: the cluster refused the patch: {exc}"
                            ) from None
    fallback = unified if unified is not None else body
    return _merge_patch(cluster, path, fallback), [fallback]


@dataclass
class ControlResult:
    rollout: dict[str, Any]
    patches: list[dict[str, Any]] = field(default_factory=list)


def promote(cluster: Cluster, namespace: str, name: str, *, full: bool = False) -> ControlResult:
    rollout = get_rollout(cluster, namespace, name)
    status = rollout.get("status") or {}
    if status.get("abort"):
        raise UserError(f"Rollout {namespace}/{name} is aborted: `churnctl deploy retry` to run "
                        "the canary again, or deploy the stable version")
    if not in_progress(rollout) and not (rollout.get("spec") or {}).get("paused"):
        raise UserError(f"Rollout {namespace}/{name} has no canary in progress (revision "
                        f"{status.get('stableRS') or '?'} is stable): nothing to promote")
    spec_patch, status_patch, unified = promote_patches(rollout, full)
    sent: list[dict[str, Any]] = []
    if status_patch is not None:
        path = rollout_path(namespace, name)
        try:
            rollout = _merge_patch(cluster, f"{path}/status", status_patch)
            sent.append(status_patch)
        except ApiError as exc:
            if exc.status != 404:
                raise UserError(f"Rollout {namespace}/{name}: the cluster refused the patch: "
                                f"{exc}") from None
            spec_patch = unified  # no status subresource: the plugin's unified patch
    if spec_patch is not None:
        rollout = _merge_patch(cluster, rollout_path(namespace, name), spec_patch)
        sent.append(spec_patch)
    return ControlResult(rollout, sent)


def abort(cluster: Cluster, namespace: str, name: str) -> ControlResult:
    rollout = get_rollout(cluster, namespace, name)
    if (rollout.get("status") or {}).get("abort"):
        raise UserError(f"Rollout {namespace}/{name} is already aborted")
    if not in_progress(rollout):
        raise UserError(f"Rollout {namespace}/{name} is finished (no canary in progress): "
                        "nothing to abort")
    updated, sent = _patch_status(cluster, namespace, name, ABORT_PATCH)
    return ControlResult(updated, sent)


def retry(cluster: Cluster, namespace: str, name: str) -> ControlResult:
    rollout = get_rollout(cluster, namespace, name)
    if not (rollout.get("status") or {}).get("abort"):
        raise UserError(f"Rollout {namespace}/{name} is not aborted: nothing to retry")
    updated, sent = _patch_status(cluster, namespace, name, RETRY_PATCH)
    return ControlResult(updated, sent)
