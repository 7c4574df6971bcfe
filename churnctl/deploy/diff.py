"""Diff a live object against its rendered form, on the fields the rendered form sets.

A live object carries server-set fields (status, uid, managedFields, defaults such as
terminationMessagePath). Comparing whole objects would show those as changes on every run, so
the live object is first projected onto the shape of the rendered one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from churnctl.deploy.render import object_id


@dataclass
class ObjectDiff:
    """How one rendered object differs from the cluster: action is create|update|unchanged."""

    id: str
    kind: str
    name: str
    namespace: str
    action: str
    diff: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "action": self.action,
            "diff": self.diff,
        }


def _keyed_by_name(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def project(live: Any, rendered: Any) -> Any:
    """The part of `live` at the paths `rendered` sets (lists of named items match by name)."""
    if isinstance(rendered, dict) and isinstance(live, dict):
        return {key: project(live[key], value) for key, value in rendered.items() if key in live}
    if isinstance(rendered, list) and isinstance(live, list):
        # Containers, env, ports, volumes...: the API server keeps them keyed by name, and may
        # reorder them; matching by position would report a move as two changes.
        if _keyed_by_name(rendered) and _keyed_by_name(live):
            by_name = {item["name"]: item for item in live}
            out = [project(by_name[i["name"]], i) for i in rendered if i["name"] in by_name]
            extra = [item for item in live if item["name"] not in {i["name"] for i in rendered}]
            return out + extra
        return [project(lv, rv) for lv, rv in zip(live, rendered, strict=False)] + live[
            len(rendered) :
        ]
    return live


def _dump(obj: Any) -> list[str]:
    import yaml

    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(keepends=True)


def diff_object(live: dict[str, Any] | None, rendered: dict[str, Any]) -> ObjectDiff:
    """The unified diff from the live object (projected) to the rendered one."""
    ident = object_id(rendered)
    before = _dump(project(live, rendered)) if live is not None else []
    after = _dump(rendered)
    text = "".join(
        difflib.unified_diff(before, after, fromfile=f"live/{ident}", tofile=f"rendered/{ident}")
    )
    action = "create" if live is None else ("update" if text else "unchanged")
    meta = rendered.get("metadata") or {}
    return ObjectDiff(
        id=ident,
        kind=str(rendered.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace") or ""),
        action=action,
        diff=text,
    )
