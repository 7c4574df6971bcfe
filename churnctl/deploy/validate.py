"""Validate rendered objects offline against the real Kubernetes JSON schemas.

The schemas are the ones bundled in kubernetes-validate. Its own `validate()` stops at the
first error; here every error of every object is collected, one line each naming
kind/name and the field, so a user fixes them all in one round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from churnctl.deploy.render import containers, object_id
from churnctl.errors import UserError

DEFAULT_KUBERNETES_VERSION = "1.30"


@dataclass
class ValidationReport:
    """What validation found: errors block a deploy, warnings are printed and pass."""

    kubernetes_version: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    if not match:
        raise UserError(f"kubernetes version {version!r} is not MAJOR.MINOR (e.g. 1.30)")
    return int(match.group(1)), int(match.group(2))


def schema_version(version: str) -> str:
    """The newest bundled schema set not newer than `version`, as 'MAJOR.MINOR.PATCH'."""
    from kubernetes_validate.utils import all_versions

    wanted = _version_tuple(version)
    bundled = sorted(all_versions(), key=_version_tuple)
    usable = [v for v in bundled if _version_tuple(v) <= wanted]
    # kubernetes-validate itself silently falls back; a version outside the bundle is a
    # mistake the user should hear about instead of getting another version's verdict.
    if not usable or wanted > _version_tuple(bundled[-1]):
        raise UserError(
            f"no bundled Kubernetes schemas for version {version}: kubernetes-validate has "
            f"{bundled[0]}..{bundled[-1]}; set kubernetes_version in the profile's deploy options"
        )
    return usable[-1]


@lru_cache(maxsize=8)
def _definitions(schema_dir: str) -> Any:
    from kubernetes_validate.utils import schema_contents

    return schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_dir)


@lru_cache(maxsize=64)
def _validator(kind: str, api_version: str, version: str, strict: bool) -> Any | None:
    """A jsonschema validator for one kind, or None when no schema exists (a CRD)."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    schema_dir = f"v{version}-local" + ("-strict" if strict else "")
    # The file naming rule of the bundle: rbac.authorization.k8s.io/v1 -> rbac-v1.
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json", ""
        )
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_definitions(schema_dir)) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"


def _deepest(error: Any) -> Any:
    """For oneOf/anyOf failures, the sub-error that says most (jsonschema's best match)."""
    from jsonschema.exceptions import best_match

    while error.context:
        error = best_match(error.context)
    return error


def _schema_errors(obj: dict[str, Any], version: str, strict: bool) -> tuple[list[str], list[str]]:
    who = object_id(obj)
    validator = _validator(str(obj["kind"]), str(obj["apiVersion"]), version, strict)
    if validator is None:
        return [], [
            f"{who}: no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes "
            f"{version}: not validated (custom resource?)"
        ]
    errors = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        best = _deepest(error)
        errors.append(f"{who}: {_field_path(best.absolute_path)}: {best.message}")
    return errors, []


def _shape_errors(obj: Any, index: int) -> list[str]:
    """What the schemas do not check but the API server and kubectl need."""
    if not isinstance(obj, dict):
        return [f"document {index}: not a mapping but {type(obj).__name__}"]
    who = object_id(obj)
    missing = [key for key in ("apiVersion", "kind") if not obj.get(key)]
    if not (obj.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    return [f"{who}: {key}: required field is missing" for key in missing]


def _policy_warnings(obj: dict[str, Any]) -> list[str]:
    """Habits that deploy fine but bite later."""
    out = []
    for container in containers(obj):
        image = str(container.get("image", ""))
        last = image.rsplit("/", 1)[-1]
        if "@" not in last and (":" not in last or last.endswith(":latest")):
            out.append(
                f"{object_id(obj)}: container {container.get('name')}: image {image!r} has no "
                "pinned tag or digest; rollbacks and caches cannot tell releases apart"
            )
    return out


def validate_manifests(
    objects: list[dict[str, Any]],
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    *,
    strict: bool = True,
) -> ValidationReport:
    """Check every object; `strict` also rejects unknown fields (typos in manifests)."""
    version = schema_version(kubernetes_version)
    report = ValidationReport(kubernetes_version=version.rsplit(".", 1)[0])
    seen: set[str] = set()
    for index, obj in enumerate(objects):
        shape = _shape_errors(obj, index)
        if shape:
            report.errors.extend(shape)
            continue
        who = object_id(obj)
        if who in seen:
            report.errors.append(f"{who}: defined more than once")
        seen.add(who)
        errors, warnings = _schema_errors(obj, version, strict)
        report.errors.extend(errors)
        report.warnings.extend(warnings)
        report.warnings.extend(_policy_warnings(obj))
    return report
