"""Validate Rollout and AnalysisTemplate objects against Argo Rollouts' own CRD schemas.

The openAPIV3Schema of each CRD (crds/, from argoproj/argo-rollouts at ARGO_ROLLOUTS_VERSION)
is checked with jsonschema, closed where the API server's strict field validation would
report an unknown field (churnctl/deploy/crd_schema.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from churnctl.deploy.render import object_id
from churnctl.deploy.rollouts import ARGO_ROLLOUTS_VERSION, ROLLOUTS_API

CRD_DIR = Path(__file__).resolve().parent / "crds"
CRD_FILES = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}


@cache
def crd_validator(kind: str) -> Any:
    from churnctl.deploy.crd_schema import crd_validator as from_file

    return from_file(CRD_DIR / CRD_FILES[kind], ROLLOUTS_API)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """One line per schema violation of a Rollout or AnalysisTemplate ([] for other kinds)."""
    from jsonschema.exceptions import best_match

    kind = obj.get("kind")
    if kind not in CRD_FILES or obj.get("apiVersion") != ROLLOUTS_API:
        return []
    lines = []
    errors = sorted(crd_validator(kind).iter_errors(obj), key=lambda e: list(map(str, e.path)))
    for error in errors:
        while error.context:
            error = best_match(error.context)
        lines.append(f"{object_id(obj)}: {_path(error.absolute_path)}: {error.message} "
                     f"(Argo Rollouts {ARGO_ROLLOUTS_VERSION} CRD schema)")
    return lines


def canary_rule_errors(obj: dict[str, Any]) -> list[str]:
    """What the CRD schema allows but the controller rejects (its validation webhook rules)."""
    if obj.get("kind") != "Rollout":
        return []
    who = object_id(obj)
    canary = ((obj.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    out = []
    for index, step in enumerate(canary.get("steps") or []):
        weight = step.get("setWeight")
        if weight is not None and not 0 <= int(weight) <= 100:
            out.append(f"{who}: spec.strategy.canary.steps[{index}].setWeight: {weight} is not "
                       "within 0..100")
    if canary.get("canaryService") and canary.get("canaryService") == canary.get("stableService"):
        out.append(f"{who}: canaryService and stableService must differ")
    return out
