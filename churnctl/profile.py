"""Profiles: which backend (and options) serves each stage. Strict, with `extends:` and diff.

A profile is found by name (a shipped file in profiles/) or by path. Every problem in a file
is reported at once, each as one line naming the file and the key.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churnctl.errors import UserError
from churnctl.profile_files import find_profile, resolve_raw
from churnctl.stages import ALL_STAGES


class ProfileError(UserError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StageBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str
    options: dict[str, Any] = Field(default_factory=dict)


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    extends: str | None = None
    stages: dict[str, StageBinding]
    # Cross-cutting services; null where the profile does without (v1 has no tracking server).
    orchestrator: StageBinding = StageBinding(backend="local")
    tracking: StageBinding | None = None
    monitoring: StageBinding | None = None
    source: str = Field(default="", exclude=True)

    def bindings(self) -> dict[str, StageBinding]:
        """Stage bindings plus the cross-cutting ones, keyed the way the registry names them."""
        out = dict(self.stages)
        for kind in ("orchestrator", "tracking", "monitoring"):
            binding = getattr(self, kind)
            if binding is not None:
                out[kind] = binding
        return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set STAGE.KEY=VALUE` items; `backend` first so options land on the new one."""
    raw = copy.deepcopy(raw)
    parsed: list[tuple[str, str, Any]] = []
    for item in overrides:
        target, sep, value = item.partition("=")
        stage, dot, key = target.partition(".")
        if not sep or not dot or not stage or not key:
            raise UserError(
                f"--set {item!r}: expected STAGE.KEY=VALUE, e.g. --set train.margin=0.01"
            )
        if stage not in raw.get("stages", {}):
            raise UserError(
                f"--set {item!r}: unknown stage {stage!r}; stages: {', '.join(ALL_STAGES)}"
            )
        parsed.append((stage, key, yaml.safe_load(value) if value else ""))
    for stage, key, value in sorted(parsed, key=lambda p: p[1] != "backend"):
        binding = raw["stages"][stage]
        if key == "backend":
            if value != binding.get("backend"):
                raw["stages"][stage] = {"backend": value, "options": {}}
        else:
            binding.setdefault("options", {})[key] = value
    return raw


def load_profile(name_or_path: str, overrides: list[str] | None = None) -> Profile:
    path = find_profile(name_or_path)
    raw = apply_overrides(resolve_raw(path), overrides or [])
    profile = validate_profile(raw, str(path))
    profile.source = str(path)
    return profile


def validate_profile(raw: dict[str, Any], source: str) -> Profile:
    """Structure, stage names, and each backend's options; every problem at once."""
    problems: list[str] = []
    profile: Profile | None = None
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        problems += [f"{source}: {_loc(err['loc'])}: {_describe(err)}" for err in exc.errors()]
    stages = raw.get("stages") if isinstance(raw.get("stages"), dict) else {}
    problems += [
        f"{source}: stages.{stage}: unknown stage; use one of {', '.join(ALL_STAGES)}"
        for stage in stages
        if stage not in ALL_STAGES
    ]
    problems += [
        f"{source}: stages.{stage}: missing; every stage needs a backend"
        for stage in ALL_STAGES
        if stage not in stages
    ]
    problems += _option_problems(_parseable_bindings(raw), source)
    if problems or profile is None:
        raise ProfileError(problems)
    return profile


def _loc(parts: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in parts)


def _describe(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling)"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"])


def _parseable_bindings(raw: dict[str, Any]) -> dict[str, tuple[str, StageBinding]]:
    """Bindings whose own shape is valid, keyed by kind, with their key path in the file."""
    found: dict[str, tuple[str, StageBinding]] = {}
    stages = raw.get("stages") if isinstance(raw.get("stages"), dict) else {}
    candidates = [(stage, f"stages.{stage}", value) for stage, value in stages.items()]
    candidates += [
        (kind, kind, raw.get(kind)) for kind in ("orchestrator", "tracking", "monitoring")
    ]
    for kind, prefix, value in candidates:
        try:
            found[kind] = (prefix, StageBinding.model_validate(value))
        except ValidationError:
            continue  # already reported by the structural check
    if "orchestrator" not in found:
        found["orchestrator"] = ("orchestrator", StageBinding(backend="local"))
    return found


def _option_problems(bindings: dict[str, tuple[str, StageBinding]], source: str) -> list[str]:
    from churnctl.registry import backend_class, is_known

    problems: list[str] = []
    for kind, (prefix, binding) in bindings.items():
        if kind not in ALL_STAGES and prefix.startswith("stages."):
            continue
        if not is_known(kind, binding.backend):
            problems.append(
                f"{source}: {prefix}.backend: unknown backend {binding.backend!r} "
                f"for {kind}; see `churnctl backends`"
            )
            continue
        try:
            cls = backend_class(kind, binding.backend)
        except UserError:
            continue  # planned or not installed: `plan` and `doctor` report it
        try:
            cls.Options.model_validate(binding.options)
        except ValidationError as exc:
            problems += [
                f"{source}: {prefix}.options.{_loc(err['loc'])}: {_describe(err)}"
                for err in exc.errors()
            ]
    return problems


def diff_profiles(a: Profile, b: Profile) -> list[dict[str, Any]]:
    """Per binding: backend change and option changes from `a` to `b`."""
    rows = []
    bindings_a, bindings_b = a.bindings(), b.bindings()
    for kind in [*ALL_STAGES, "orchestrator", "tracking", "monitoring"]:
        left, right = bindings_a.get(kind), bindings_b.get(kind)
        if left is None and right is None:
            continue
        left_opts = left.options if left else {}
        right_opts = right.options if right else {}
        changed = {
            key: (left_opts.get(key), right_opts.get(key))
            for key in sorted(set(left_opts) | set(right_opts))
            if left_opts.get(key) != right_opts.get(key)
        }
        rows.append(
            {
                "binding": kind,
                "from": left.backend if left else None,
                "to": right.backend if right else None,
                "options": changed,
            }
        )
    return rows
