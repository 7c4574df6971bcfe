"""Profile files: finding them (shipped name or path), reading YAML, resolving `extends:`.

Kept apart from the pydantic models in profile.py so that `profile list` and start-up paths
can read profiles without importing pydantic.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from churnctl.errors import UserError

SHIPPED_DIRS = (
    Path(__file__).parent / "profiles",  # inside an installed wheel
    Path(__file__).parent.parent / "profiles",  # a source checkout
)


def shipped_names() -> list[str]:
    names: set[str] = set()
    for folder in SHIPPED_DIRS:
        if folder.is_dir():
            names.update(path.stem for path in folder.glob("*.yaml"))
    return sorted(names)


def find_profile(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(
                f"profile file {name_or_path} not found; give a shipped name "
                f"({', '.join(shipped_names())}) or an existing YAML path"
            )
        return path
    for folder in SHIPPED_DIRS:
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise UserError(
        f"unknown profile {name_or_path!r}; shipped profiles: "
        f"{', '.join(shipped_names())} (or pass a path to a YAML file)"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        # The C loader is ~10x faster and start-up time is a feature; same safe semantics.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the profile as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(
            f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a profile must be a YAML mapping with `name:` and `stages:`")
    check_size(data, str(path))
    return data


MAX_NODES = 20_000  # a real profile has a few hundred; aliases can expand to billions


def check_size(data: Any, where: str) -> None:
    """Refuse a profile whose values expand (through YAML aliases) past MAX_NODES: an anchor
    bomb would otherwise pass validation and blow up `profile show` or `diff` later."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise UserError(f"{where}: expands to more than {MAX_NODES:,} values (YAML anchors "
                            "and aliases?); write the options out plainly")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def merge_profiles(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; stage options merge key by key unless the child changes the backend."""
    merged = copy.deepcopy(parent)
    for key, value in child.items():
        if key == "stages" and isinstance(value, dict):
            stages = merged.setdefault("stages", {})
            for stage, binding in value.items():
                stages[stage] = _merge_binding(stages.get(stage), binding)
        elif key in ("orchestrator", "tracking", "monitoring") and isinstance(value, dict):
            merged[key] = _merge_binding(merged.get(key), value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_binding(parent: Any, child: Any) -> Any:
    if not isinstance(parent, dict) or not isinstance(child, dict):
        return copy.deepcopy(child)
    if "backend" in child and child["backend"] != parent.get("backend"):
        return copy.deepcopy(child)  # the parent's options belong to another backend
    merged = {**parent, **child}
    parent_options, child_options = parent.get("options", {}), child.get("options", {})
    # Options that are not a mapping are left for validation to report with the file and key.
    if isinstance(parent_options, dict) and isinstance(child_options, dict):
        merged["options"] = {**parent_options, **child_options}
    return merged


def _empty_options_as_mapping(raw: dict[str, Any]) -> dict[str, Any]:
    """`options:` with nothing after it is YAML null; in a profile it means no options: {}."""
    stages = raw.get("stages")
    bindings = list(stages.values()) if isinstance(stages, dict) else []
    bindings += [raw.get(kind) for kind in ("orchestrator", "tracking", "monitoring")]
    for binding in bindings:
        if isinstance(binding, dict) and "options" in binding and binding["options"] is None:
            binding["options"] = {}
    return raw


def resolve_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise UserError(f"{path}: `extends:` forms a cycle ({chain}); remove one link")
    # Per file, before merging: a child's empty `options:` must extend, not replace or crash.
    raw = _empty_options_as_mapping(read_yaml(path))
    parent_name = raw.get("extends")
    if not parent_name:
        return raw
    beside = path.parent / str(parent_name)  # a relative `extends:` is relative to this file
    parent_path = beside if beside.is_file() else find_profile(str(parent_name))
    parent = resolve_raw(parent_path, (*seen, path.resolve()))
    merged = merge_profiles(parent, raw)
    merged["extends"] = str(parent_name)
    return merged
