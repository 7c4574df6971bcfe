"""A CustomResourceDefinition's schema as a jsonschema validator, for objects churnctl renders
but cannot send to a cluster here (Argo Rollouts' Rollout and AnalysisTemplate, the Spark
operator's SparkApplication).

Two Kubernetes extensions are honoured: `x-kubernetes-int-or-string` (an integer or a string)
and `x-kubernetes-preserve-unknown-fields`. Everywhere else an object schema with `properties`
is closed, as the API server's strict field validation (`kubectl apply --validate=strict`)
reports unknown fields: a typo is an error, not a field the server silently prunes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def structural(schema: Any) -> Any:
    """A CRD schema as plain JSON Schema (see the module docstring)."""
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: structural(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def crd_validator(crd_file: Path, api_version: str) -> Any:
    """A jsonschema validator for `api_version` (group/version) of the CRD in `crd_file`."""
    import jsonschema
    import yaml

    crd = yaml.safe_load(crd_file.read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == api_version.split("/")[1])
    return jsonschema.Draft202012Validator(structural(version["schema"]["openAPIV3Schema"]))
