"""Profiles: which backend (and options) serves each stage. Strict, with `extends:` and diff.

A profile is found by name (a shipped file in profiles/) or by path. Every problem in a file
is reported at once, each as one line naming the file and the key.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUserError,
    TypeAdapter,
    ValidationError,
)

from churnctl.errors import UserError
from churnctl.profile_files import check_size, find_profile, resolve_raw
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
    # OpenTelemetry (churnctl/tracing.py): backend otlp, options endpoint/protocol/sample_ratio.
    tracing: StageBinding | None = None
    scan: StageBinding | None = None  # `churnctl scan` defaults (churnctl/cli/scan.py)
    source: str = Field(default="", exclude=True)

    def bindings(self) -> dict[str, StageBinding]:
        """Stage bindings plus the cross-cutting ones, keyed the way the registry names them."""
        out = dict(self.stages)
        for kind in ("orchestrator", "tracking", "monitoring"):
            binding = getattr(self, kind)
            if binding is not None:
                out[kind] = binding
        return out


CROSS_CUTTING = ("orchestrator", "tracking", "monitoring")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set BINDING.KEY=VALUE` items to a stage or a cross-cutting binding.

    `backend` items go first, so options land on (and are typed by) the new backend whatever
    the order on the command line.
    """
    raw = copy.deepcopy(raw)
    parsed = [_parse_override(item, raw) for item in overrides]
    for item, kind, key, text in sorted(parsed, key=lambda p: p[2] != "backend"):
        binding = _raw_binding(raw, kind)
        if key == "backend":
            if not isinstance(binding, dict) or text != binding.get("backend"):
                _set_raw_binding(raw, kind, {"backend": text, "options": {}})
            continue
        if binding is None:
            raise UserError(
                f"--set {item!r}: the profile has no {kind} binding; "
                f"add --set {kind}.backend=NAME (see `churnctl backends`)"
            )
        if not isinstance(binding, dict):
            continue  # a malformed binding: validation reports it with the file and key
        if binding.get("options") is None:
            binding["options"] = {}
        if isinstance(binding["options"], dict):
            annotation = _option_annotation(kind, binding.get("backend"), key)
            binding["options"][key] = _option_value(item, text, annotation)
    return raw


def _parse_override(item: str, raw: dict[str, Any]) -> tuple[str, str, str, str]:
    target, sep, text = item.partition("=")
    kind, dot, key = target.partition(".")
    if not sep or not dot or not kind or not key:
        raise UserError(f"--set {item!r}: expected STAGE.KEY=VALUE, e.g. --set train.margin=0.01")
    stages = raw.get("stages") if isinstance(raw.get("stages"), dict) else {}
    if kind not in CROSS_CUTTING and kind not in ALL_STAGES and kind not in stages:
        raise UserError(
            f"--set {item!r}: unknown stage or binding {kind!r}; "
            f"use one of {', '.join((*ALL_STAGES, *CROSS_CUTTING))}"
        )
    return item, kind, key, text


def _raw_binding(raw: dict[str, Any], kind: str) -> Any:
    """The binding `kind` in the raw profile (None when absent), for updating in place."""
    if kind == "orchestrator" and "orchestrator" not in raw:
        # No orchestrator in the file means the local one (the Profile default).
        raw["orchestrator"] = {"backend": "local", "options": {}}
    if kind in CROSS_CUTTING:
        return raw.get(kind)
    stages = raw.get("stages")
    return stages.get(kind) if isinstance(stages, dict) else None


def _set_raw_binding(raw: dict[str, Any], kind: str, binding: dict[str, Any]) -> None:
    if kind in CROSS_CUTTING:
        raw[kind] = binding
    elif isinstance(raw.setdefault("stages", {}), dict):
        raw["stages"][kind] = binding


def _option_annotation(kind: str, backend: Any, key: str) -> Any | None:
    """The type of option `key` in the backend's Options model; None when it cannot be known."""
    from churnctl.registry import backend_class

    if not isinstance(backend, str):
        return None
    try:
        cls = backend_class(kind, backend)
    except UserError:
        return None  # unknown, planned or not installed: validation or `plan` says so
    field = cls.Options.model_fields.get(key)
    return None if field is None else field.annotation


def _option_value(item: str, text: str, annotation: Any | None) -> Any:
    """The value of a --set item, typed by the option's own type before YAML's guess.

    YAML alone turns `2024-01-01` into a date and `01` into 1, which a `str` option then
    rejects; so the raw text wins whenever the option's type accepts it as a string.
    """
    adapter = _adapter(annotation)
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        adapter = None  # quoted on purpose (`--set 'ingest.path="a b.csv"'`): YAML unquotes it
    if adapter is not None:
        if text.strip() in ("null", "Null", "NULL", "~") and _accepts(adapter, None):
            return None
        try:
            value = adapter.validate_python(text)
        except ValidationError:
            pass  # not this type as text (a list, a null): YAML's reading below
        else:
            # Plain values are kept typed (for `profile show` and diff); richer ones (a date,
            # a Path) stay text so the profile stays plain YAML, and the Options model parses.
            return value if isinstance(value, bool | int | float | str) else text
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise UserError(
            f"--set {item!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)}); "
            "quote it or fix the brackets"
        ) from None
    check_size(value, f"--set {item[:60]!r}")
    return value


def _adapter(annotation: Any | None) -> TypeAdapter[Any] | None:
    if annotation is None:
        return None
    try:
        return TypeAdapter(annotation)
    except PydanticUserError:
        return None  # a type pydantic cannot build a validator for alone: YAML decides


def _accepts(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def load_profile(name_or_path: str, overrides: list[str] | None = None) -> Profile:
    path = find_profile(name_or_path)
    raw = apply_overrides(resolve_raw(path), overrides or [])
    profile = validate_profile(raw, str(path), overrides)
    profile.source = str(path)
    return profile


def validate_profile(raw: dict[str, Any], source: str,
                     overrides: list[str] | None = None) -> Profile:
    """Structure, stage names, and each backend's options; every problem at once. A problem
    with a value that came from `--set` names the flag, not the profile file."""
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
    flags = {item.partition("=")[0]: item for item in overrides or [] if "=" in item}
    problems += _option_problems(_parseable_bindings(raw), source, flags)
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
    if err["type"] == "value_error":  # a validator's own sentence, without pydantic's prefix
        return str(err["msg"]).removeprefix("Value error, ")
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


def _option_problems(bindings: dict[str, tuple[str, StageBinding]], source: str,
                     flags: dict[str, str]) -> list[str]:
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
            for err in exc.errors():
                flag = flags.get(f"{kind}.{err['loc'][0]}") if err["loc"] else None
                where = f"--set {flag!r}" if flag else \
                    f"{source}: {prefix}.options.{_loc(err['loc'])}"
                problems.append(f"{where}: {_describe(err)}")
    return problems


def diff_profiles(a: Profile, b: Profile) -> list[dict[str, Any]]:
    """Per binding: backend change and option changes from `a` to `b`. A changed backend is
    one change with the new backend's options (`options_of_new_backend`): the old backend's
    options do not carry over, so listing each as `old -> None` says nothing."""
    rows = []
    bindings_a, bindings_b = a.bindings(), b.bindings()
    for kind in [*ALL_STAGES, "orchestrator", "tracking", "monitoring"]:
        left, right = bindings_a.get(kind), bindings_b.get(kind)
        if left is None and right is None:
            continue
        left_opts = left.options if left else {}
        right_opts = right.options if right else {}
        before, after = (left.backend if left else None), (right.backend if right else None)
        replaced = before != after
        changed = {} if replaced else {
            key: (left_opts.get(key), right_opts.get(key))
            for key in sorted(set(left_opts) | set(right_opts))
            if left_opts.get(key) != right_opts.get(key)
        }
        rows.append({"binding": kind, "from": before, "to": after, "options": changed,
                     "options_of_new_backend": dict(right_opts) if replaced else None})
    return rows
