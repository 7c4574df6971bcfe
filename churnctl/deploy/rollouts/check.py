"""`churnctl deploy analyze`: run a canary's AnalysisTemplates now, abort the canary on failure.

The templates are the ones the profile renders (the thresholds the cluster has), their args
the live Rollout's pod-template hashes (what `podTemplateHashValue: Latest | Stable` gives the
controller), evaluated by churnctl's evaluator against Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from churnctl.deploy.apply import Cluster
from churnctl.deploy.rollouts.analysis import CANARY_ARG, STABLE_ARG, resolve_args
from churnctl.deploy.rollouts.control import abort, get_rollout, in_progress
from churnctl.deploy.rollouts.evaluate import RunResult, run_analysis
from churnctl.errors import UserError


def canary_args(rollout: dict[str, Any]) -> dict[str, str]:
    status = rollout.get("status") or {}
    return {CANARY_ARG: str(status.get("currentPodHash")), STABLE_ARG: str(status.get("stableRS"))}


def check_canary(
    cluster: Cluster,
    namespace: str,
    name: str,
    templates: list[dict[str, Any]],
    *,
    address: str | None = None,
    abort_on_failure: bool = False,
    query: Callable[[str, str], Any] | None = None,
) -> tuple[RunResult, bool]:
    """(the run's result, whether the canary was aborted)."""
    rollout = get_rollout(cluster, namespace, name)
    if not in_progress(rollout) or (rollout.get("status") or {}).get("abort"):
        raise UserError(f"Rollout {namespace}/{name} has no canary in progress: nothing to "
                        "analyze")
    args = canary_args(rollout)
    metrics = [m for template in templates
               for m in resolve_args(template, {k: v for k, v in args.items()
                                                if k in {a["name"] for a in
                                                         template["spec"].get("args") or []}})]
    kwargs = {"query": query} if query is not None else {}
    result = run_analysis(metrics, address=address, **kwargs)
    aborted = False
    if abort_on_failure and result.phase in ("Failed", "Error"):
        abort(cluster, namespace, name)
        aborted = True
    return result, aborted
