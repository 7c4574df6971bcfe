"""The upgrade plan: what moving a project from its current profile to a target changes.

Per binding the backend and option changes (a backend change is one row with the new
backend's options, profile.diff_profiles), the pip extras to install, what `doctor` finds
missing for the target, services and environment variables that are new, and the Kubernetes
objects that appear or go away (both profiles' deploy backends rendered).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from churnctl.errors import ChurnctlError
from churnctl.profile import Profile, diff_profiles
from churnctl.upgrade.needs import all_bindings, binary_found, profile_needs

# A password inside an option value (Redis's `host:port,password=...`) is never printed.
_PASSWORD = re.compile(r"(password=)[^,\"']*", re.IGNORECASE)


def masked(data: Any) -> Any:
    """`data` (JSON-able) with every `password=...` value replaced by ***."""
    return json.loads(_PASSWORD.sub(r"\1***", json.dumps(data, default=str)))


@dataclass
class UpgradePlan:
    current: str
    target: str
    changes: list[dict[str, Any]]
    extras: list[dict[str, Any]]  # {"extra", "install", "installed", "for"}
    doctor: list[dict[str, Any]]  # the target's doctor rows
    services: list[dict[str, str]]  # new in the target
    env: list[dict[str, Any]]  # new in the target
    binaries: list[dict[str, Any]]  # {"name", "found"} the target needs
    kubernetes: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    written: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def missing_extras(self) -> list[dict[str, Any]]:
        return [e for e in self.extras if not e["installed"]]


def _other_rows(a: Profile, b: Profile) -> list[dict[str, Any]]:
    """tracing and scan, which diff_profiles leaves out, in the same row shape."""
    rows = []
    for kind in ("tracing", "scan"):
        left, right = getattr(a, kind), getattr(b, kind)
        if left is None and right is None:
            continue
        before, after = (left.backend if left else None), (right.backend if right else None)
        replaced = before != after
        lo, ro = (left.options if left else {}), (right.options if right else {})
        changed = {} if replaced else {k: (lo.get(k), ro.get(k)) for k in sorted(set(lo) | set(ro))
                                       if lo.get(k) != ro.get(k)}
        rows.append({"binding": kind, "from": before, "to": after, "options": changed,
                     "options_of_new_backend": dict(ro) if replaced and right else None})
    return rows


def _extras(current: Profile, target: Profile) -> list[dict[str, Any]]:
    from churnctl.registry import describe

    have = {describe(k, b.backend).extra for k, b in all_bindings(current).items()
            if k not in ("tracing", "scan")}
    needed: dict[str, dict[str, Any]] = {}
    for kind, binding in target.bindings().items():
        info = describe(kind, binding.backend)
        if not info.extra or (info.extra in have and info.installed):
            continue
        entry = needed.setdefault(info.extra, {"extra": info.extra, "install": info.install_hint,
                                               "installed": True, "for": []})
        entry["installed"] = entry["installed"] and info.installed
        entry["for"].append(f"{kind}.{binding.backend}")
    for kind, module in (("tracing", "opentelemetry.sdk"), ("scan", "bandit")):
        if getattr(target, kind) is not None and getattr(current, kind) is None:
            import importlib.util

            extra = "otel" if kind == "tracing" else "scan"
            needed[extra] = {"extra": extra, "install": f"pip install 'churnctl[{extra}]'",
                             "installed": importlib.util.find_spec(module) is not None,
                             "for": [f"{kind}.{getattr(target, kind).backend}"]}
    return sorted(needed.values(), key=lambda e: e["extra"])


def kubernetes_changes(current: Profile, target: Profile) -> dict[str, Any]:
    """Objects each deploy backend renders, by `Kind/name`: appear, go away, stay."""
    rendered: dict[str, list[str]] = {}
    for which, profile in (("current", current), ("target", target)):
        try:
            rendered[which] = render_objects(profile)
        except ChurnctlError as exc:
            return {"error": f"{which} profile {profile.name}: {str(exc).splitlines()[0]}"}
    before, after = set(rendered["current"]), set(rendered["target"])
    return {"appear": sorted(after - before), "go_away": sorted(before - after),
            "unchanged": len(before & after)}


def render_objects(profile: Profile) -> list[str]:
    from churnctl.deploy.render import object_id
    from churnctl.registry import backend_class, require_available

    binding = profile.stages["deploy"]
    cls = backend_class("deploy", binding.backend)
    require_available(cls)
    options = cls.Options.model_validate(binding.options)
    return [object_id(obj) for obj in cls().render(options)]  # type: ignore[attr-defined]


def upgrade_plan(current: Profile, target: Profile, render: bool = True) -> UpgradePlan:
    from churnctl.doctor import doctor_checks

    rows = diff_profiles(current, target) + _other_rows(current, target)
    changes = [r for r in rows if r["from"] != r["to"] or r["options"]]
    old, new = profile_needs(current), profile_needs(target)
    old_env = {v.name for v in old["env"]}
    old_services = {s.name for s in old["services"]}
    doctor = doctor_checks(target, versions=False)
    binaries = sorted({*new["binaries"], *(b for r in doctor for b in r["binaries"])})
    return UpgradePlan(
        current=current.name, target=target.name, changes=masked(changes),
        extras=_extras(current, target), doctor=doctor,
        services=masked([asdict(s) for s in new["services"] if s.name not in old_services]),
        env=[asdict(v) for v in new["env"] if v.name not in old_env],
        binaries=[{"name": b, "found": binary_found(b)} for b in binaries],
        kubernetes=kubernetes_changes(current, target) if render else {},
    )
