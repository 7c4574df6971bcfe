"""What `churnctl deploy status` shows: step, weights, analysis runs and their measurements."""

from __future__ import annotations

from typing import Any

from churnctl.deploy.apply import ApiError, Cluster
from churnctl.deploy.rollouts import ROLLOUTS_API
from churnctl.deploy.rollouts.control import (
    current_step_index,
    get_rollout,
    in_progress,
    steps_of,
)
from churnctl.deploy.rollouts.manifests import model_version_of
from churnctl.errors import UserError

FINISHED_PHASES = frozenset({"Healthy", "Degraded"})


def describe_step(step: dict[str, Any] | None) -> str:
    if step is None:
        return "done"
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "pause" in step:
        duration = (step["pause"] or {}).get("duration")
        return f"pause {duration}" if duration else "pause (until promoted)"
    if "analysis" in step:
        names = [t.get("templateName") for t in step["analysis"].get("templates") or []]
        return "analysis " + ", ".join(str(n) for n in names)
    return next(iter(step), "?")


def canary_weight(rollout: dict[str, Any]) -> int:
    """The canary's share in %: the router's figure if there is one, else the step's weight."""
    status = rollout.get("status") or {}
    weights = (status.get("canary") or {}).get("weights") or {}
    if weights.get("canary"):
        return int(weights["canary"].get("weight") or 0)
    if status.get("abort") or not in_progress(rollout):
        return 0
    steps, index = steps_of(rollout), current_step_index(rollout)
    if index is None or status.get("promoteFull") or index >= len(steps):
        return 100
    weight = 0
    for step in steps[: index + 1]:
        weight = int(step.get("setWeight", weight))
    return weight


def _owned_by(run: dict[str, Any], name: str) -> bool:
    owners = (run.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("kind") == "Rollout" and o.get("name") == name for o in owners)


def analysis_runs(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    path = f"/apis/{ROLLOUTS_API}/namespaces/{namespace}/analysisruns"
    try:
        items = cluster.request("GET", path).get("items") or []
    except ApiError as exc:
        raise UserError(f"cannot list AnalysisRuns in {namespace}: {exc}") from None
    runs = [run for run in items if _owned_by(run, name)]
    return sorted(runs, key=lambda r: (r.get("metadata") or {}).get("creationTimestamp") or "")


def summarize_run(run: dict[str, Any]) -> dict[str, Any]:
    status = run.get("status") or {}
    metrics = []
    for result in status.get("metricResults") or []:
        measurements = result.get("measurements") or []
        metrics.append({
            "name": result.get("name"),
            "phase": result.get("phase"),
            "count": result.get("count", 0),
            "failed": result.get("failed", 0),
            "values": [m.get("value") for m in measurements],
            "message": result.get("message") or "",
        })
    return {"name": (run.get("metadata") or {}).get("name"), "phase": status.get("phase"),
            "message": status.get("message") or "", "metrics": metrics}


def summarize(rollout: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    meta, status = rollout.get("metadata") or {}, rollout.get("status") or {}
    steps, index = steps_of(rollout), current_step_index(rollout)
    step = steps[index] if index is not None and index < len(steps) else None
    weight = canary_weight(rollout)
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "phase": status.get("phase") or "Unknown",
        "message": status.get("message") or "",
        "aborted": bool(status.get("abort")),
        "paused": bool(status.get("pauseConditions")) or bool(
            (rollout.get("spec") or {}).get("paused")),
        "step": index,
        "steps": len(steps),
        "current_step": describe_step(step) if in_progress(rollout) else "done",
        "weights": {"canary": weight, "stable": 100 - weight},
        "stable_revision": status.get("stableRS"),
        "canary_revision": status.get("currentPodHash") if in_progress(rollout) else None,
        "model_version": model_version_of(rollout) if rollout.get("spec") else None,
        "analysis_runs": [summarize_run(run) for run in runs],
    }


def rollout_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    rollout = get_rollout(cluster, namespace, name)
    return summarize(rollout, analysis_runs(cluster, namespace, name))
