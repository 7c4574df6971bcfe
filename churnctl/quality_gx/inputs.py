"""What of the workspace's GX project a validate.gx verdict depends on, as cache-key digests.

churnctl regenerates its own part of `gx/` from the contract and the options (both already in
the stage's key), so hashing the files whole would change the key on the run that first
writes them and rerun the stage once for nothing. What a user edits is what counts:

- the expectations of every suite that churnctl did not generate (those without churnctl's
  meta mark), in churnctl's suites and in the user's own;
- the validation definitions a user added to a churnctl checkpoint, and the user's own
  validation definition files (one of them may be run by such a checkpoint).

Each expectation is normalized as GX writes it back (no id, no empty fields, numbers as
floats, severity `critical` when absent), so the rewrite of a suite by `add_or_update` keeps
its digest. A file that does not parse is hashed whole: the stage then runs and reports it in
one line.
Pure JSON: `plan` computes this without importing GX.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from churnctl.quality_gx.contract import MARK, SUITE_PREFIX
from churnctl.quality_gx.project import PROJECT_DIR


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _without_ids(value: Any) -> Any:
    """No ids, and numbers as floats: GX writes `"max_value": 100` back as 100.0."""
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def normalized_expectation(item: Any) -> Any:
    """A user's expectation as it reads after GX rewrote it (ids and empty fields dropped)."""
    if not isinstance(item, dict):
        return item
    kept = {k: v for k, v in _without_ids(item).items() if v not in (None, {}, [], "")}
    kept.setdefault("severity", "critical")
    return kept


def _suite_part(data: Any) -> Any:
    items = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return data  # not a suite: all of it counts (the run reports it)
    theirs = [normalized_expectation(e) for e in items
              if not (isinstance(e, dict) and MARK in (e.get("meta") or {}))]
    return {"expectations": theirs} if theirs else None


def _checkpoint_part(path: Path, data: Any) -> Any:
    if not path.stem.startswith(SUITE_PREFIX):
        return None  # churnctl runs only its own checkpoints
    listed = data.get("validation_definitions") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return data
    theirs = sorted(str(d.get("name")) for d in listed
                    if isinstance(d, dict) and d.get("name") != path.stem)
    return {"validation_definitions": theirs} if theirs else None


def _definition_part(path: Path, data: Any) -> Any:
    return None if path.stem.startswith(SUITE_PREFIX) else _without_ids(data)


def project_digests(root: Path) -> dict[str, str]:
    """`gx/<folder>/<file>` -> digest of the user's part of it, for files that have one."""
    gx_dir = root / PROJECT_DIR
    digests: dict[str, str] = {}
    for folder in ("expectations", "checkpoints", "validation_definitions"):
        base = gx_dir / folder
        for path in sorted(base.rglob("*.json")) if base.is_dir() else []:
            name = path.relative_to(root).as_posix()
            raw = path.read_bytes()
            try:
                data = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                digests[name] = hashlib.sha256(raw).hexdigest()
                continue
            if folder == "expectations":
                part = _suite_part(data)
            elif folder == "checkpoints":
                part = _checkpoint_part(path, data)
            else:
                part = _definition_part(path, data)
            if part is not None:
                digests[name] = _digest(part)
    return digests
