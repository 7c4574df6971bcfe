"""Turn the rendered overlay into a canary: the API Deployment becomes an Argo Rollout.

The Rollout takes the Deployment's replicas, selector and pod template as they are (the same
hardened pod: non-root, read-only root filesystem, no token, probes, limits), so the overlays
stay the one place that decides how the API runs. Beside it: stable and canary Services
(copies of the API Service that Argo narrows to each ReplicaSet by pod-template hash), the
AnalysisTemplates, and with `traffic_router: nginx` an Ingress (`gateway`: a Gateway API
HTTPRoute) that Argo splits by weight.
"""

from __future__ import annotations

import copy
from typing import Any

from churnctl.deploy.rollouts import ROLLOUTS_API
from churnctl.deploy.rollouts.analysis import analysis_step, analysis_templates
from churnctl.errors import UserError

API_NAME = "churnctl-api"
STABLE_SERVICE, CANARY_SERVICE = "churnctl-api-stable", "churnctl-api-canary"
TRACK_LABEL = "churnctl.io/track"
REGION_LABEL = "topology.kubernetes.io/region"


def canary_steps(weights: list[int], pause: str | None) -> list[dict[str, Any]]:
    """setWeight, analysis, pause for every weight below 100; reaching 100 ends the canary.

    `pause` None waits for `churnctl deploy promote`; a duration ("10m") moves on by itself.
    """
    steps: list[dict[str, Any]] = []
    for weight in weights:
        if weight >= 100:
            break
        steps.append({"setWeight": weight})
        steps.append(analysis_step())
        steps.append({"pause": {"duration": pause}} if pause else {"pause": {}})
    return steps


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    raise UserError(f"the overlay renders no {kind} {name}: a canary replaces the API "
                    "Deployment; check the overlay's resources")


def rollout_from_deployment(deployment: dict[str, Any], options: Any) -> dict[str, Any]:
    spec = deployment["spec"]
    canary: dict[str, Any] = {
        "canaryService": CANARY_SERVICE,
        "stableService": STABLE_SERVICE,
        # Dashboards and ad-hoc queries can tell the two apart without knowing the hashes.
        "canaryMetadata": {"labels": {TRACK_LABEL: "canary"}},
        "stableMetadata": {"labels": {TRACK_LABEL: "stable"}},
        # As the Deployment's rolling update: never below the wanted replicas.
        "maxSurge": 1,
        "maxUnavailable": 0,
        "steps": canary_steps(options.canary_steps, options.pause),
    }
    if options.traffic_router == "nginx":
        canary["trafficRouting"] = {"nginx": {"stableIngress": API_NAME}}
    elif options.traffic_router == "gateway":
        # Argo's Gateway API plugin (argoproj-labs/gatewayAPI) sets the HTTPRoute's weights.
        namespace = (deployment.get("metadata") or {}).get("namespace")
        canary["trafficRouting"] = {"plugins": {"argoproj-labs/gatewayAPI": {
            "httpRoute": API_NAME, **({"namespace": namespace} if namespace else {})}}}
    template = copy.deepcopy(spec["template"])
    if options.model_version is not None:
        for container in template["spec"]["containers"]:
            if container.get("name") == "api":
                container["args"] = [*_without_model_version(container.get("args") or []),
                                     "--model-version", str(options.model_version)]
    return {
        "apiVersion": ROLLOUTS_API,
        "kind": "Rollout",
        "metadata": copy.deepcopy(deployment["metadata"]),
        "spec": {
            "replicas": spec.get("replicas", 1),
            "revisionHistoryLimit": spec.get("revisionHistoryLimit", 5),
            "selector": copy.deepcopy(spec["selector"]),
            "template": template,
            "strategy": {"canary": canary},
        },
    }


def _without_model_version(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--model-version":
            skip = True
        elif not arg.startswith("--model-version="):
            out.append(arg)
    return out


def model_version_of(rollout: dict[str, Any]) -> int | None:
    """The model version a Rollout's API container pins (None: the registry's production)."""
    for container in rollout["spec"]["template"]["spec"].get("containers") or []:
        args = container.get("args") or []
        for index, arg in enumerate(args):
            if arg == "--model-version" and index + 1 < len(args):
                return int(args[index + 1])
            if arg.startswith("--model-version="):
                return int(arg.split("=", 1)[1])
    return None


def _service_copy(service: dict[str, Any], name: str, track: str) -> dict[str, Any]:
    out = copy.deepcopy(service)
    out["metadata"]["name"] = name
    out["metadata"].setdefault("labels", {})[TRACK_LABEL] = track
    return out


def _ingress(service: dict[str, Any], host: str) -> dict[str, Any]:
    meta = service["metadata"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": API_NAME, "namespace": meta.get("namespace"),
                     "labels": dict(meta.get("labels") or {})},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": STABLE_SERVICE, "port": {"name": "http"}}},
            }]}}],
        },
    }


def _http_route(service: dict[str, Any], host: str, gateway: str) -> dict[str, Any]:
    meta = service["metadata"]
    port = service["spec"]["ports"][0]["port"]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": API_NAME, "namespace": meta.get("namespace"),
                     "labels": dict(meta.get("labels") or {})},
        "spec": {
            "parentRefs": [{"name": gateway}],
            "hostnames": [host],
            "rules": [{"backendRefs": [
                {"name": STABLE_SERVICE, "port": port, "weight": 100},
                {"name": CANARY_SERVICE, "port": port, "weight": 0},
            ]}],
        },
    }


def to_canary(objects: list[dict[str, Any]], options: Any) -> list[dict[str, Any]]:
    """The overlay's objects with the API Deployment replaced by a Rollout and its companions."""
    deployment = _find(objects, "Deployment", API_NAME)
    service = _find(objects, "Service", API_NAME)
    namespace = (deployment.get("metadata") or {}).get("namespace")
    out: list[dict[str, Any]] = []
    for obj in objects:
        if obj is deployment:
            out.append(rollout_from_deployment(deployment, options))
        else:
            out.append(obj)
            if obj is service:
                out.append(_service_copy(service, STABLE_SERVICE, "stable"))
                out.append(_service_copy(service, CANARY_SERVICE, "canary"))
    if options.traffic_router == "nginx":
        out.append(_ingress(service, options.ingress_host))
    elif options.traffic_router == "gateway":
        out.append(_http_route(service, options.ingress_host, options.gateway))
    out.extend(analysis_templates(options.analysis, namespace))
    return out
