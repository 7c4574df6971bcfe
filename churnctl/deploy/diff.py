"""Diff a live object against what the cluster would make of it (a server-side apply dry run).

The "after" side is the API server's answer to a dry-run apply (`dryRun=All`), so it already
has what apply would do: defaults filled in, fields churnctl applied before and no longer
sets removed, fields other managers own kept. Comparing it with the live object shows exactly
what apply will change, removals included. Only what the server maintains by itself (identity,
resourceVersion, generation, managedFields, status) is left out of both sides.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any

from churnctl.deploy.render import object_id

# Set by the API server on every write, whatever the manifest says: never a change to show.
SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "managedFields",
    "selfLink",
)


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


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server maintains (SERVER_METADATA and status)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_METADATA:
            meta.pop(key, None)
    out.pop("status", None)
    return out


def _dump(obj: dict[str, Any] | None) -> list[str]:
    import yaml

    if obj is None:
        return []
    text = yaml.safe_dump(comparable(obj), sort_keys=True, default_flow_style=False)
    return text.splitlines(keepends=True)


def diff_object(
    live: dict[str, Any] | None, after: dict[str, Any], *, source: str = "merged"
) -> ObjectDiff:
    """The unified diff from the live object to `after`.

    `after` is the dry-run result ("merged"), or the rendered object itself ("rendered") when
    the server cannot dry-run it yet (a create into a namespace this deploy creates).
    """
    ident = object_id(after)
    text = "".join(
        difflib.unified_diff(
            _dump(live), _dump(after), fromfile=f"live/{ident}", tofile=f"{source}/{ident}"
        )
    )
    action = "create" if live is None else ("update" if text else "unchanged")
    meta = after.get("metadata") or {}
    return ObjectDiff(
        id=ident,
        kind=str(after.get("kind", "")),
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace") or ""),
        action=action,
        diff=text,
    )
