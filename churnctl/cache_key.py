"""A stage's cache key: what it is made of, and why it changed since the previous run.

The key is the hash of the stage's *components*: backend, options, the content hash of each
input artifact, the sha256 of each external input file (and the digests a backend declares
besides, Backend.input_digests), and the code version (code_version.py).
`explain` compares the components with those of the stage's previous artifact to name what
changed (`options changed: seed`, `code changed: churnctl/domain/schema.py`, ...).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from churnctl.code_version import backend_code_version, describe_change
from churnctl.errors import UserError
from churnctl.hashing import file_sha256
from churnctl.stages import MANIFEST, ArtifactRef, Backend
from churnctl.workspace import Workspace

LATEST = "LATEST"  # per stage: the key of its newest artifact, to explain what changed since


@cache
def code_component(cls: type[Backend], workspace: Workspace) -> dict[str, Any]:
    # Once per process and backend: a run's plan and execution must agree on it, and a module
    # edited while a run is in flight is picked up by the next run, not halfway through.
    return backend_code_version(cls, workspace.state / "cache").component()


def external_name(path: Path, workspace: Workspace, cls: type[Backend]) -> str:
    """How an external input is named in the cache key: relative to the workspace, or to the
    backend's installed package (a script shipped with it), so that a moved project, a clone
    or another venv keeps its cache; absolute only for files outside both."""
    if path.is_relative_to(workspace.root):
        return path.relative_to(workspace.root).as_posix()
    package = sys.modules[cls.__module__.split(".")[0]]
    base = Path(package.__file__).parent.parent if package.__file__ else None
    if base is not None and path.is_relative_to(base):
        return path.relative_to(base).as_posix()
    return str(path)


def components(cls: type[Backend], options: Any, inputs: dict[str, ArtifactRef],
                workspace: Workspace) -> dict[str, Any]:
    external = {}
    for path in cls().external_inputs(options, workspace):
        if not path.is_file():
            raise UserError(f"input file {path} not found; check the path in the profile or --set")
        try:
            external[external_name(path, workspace, cls)] = file_sha256(path)
        except PermissionError:
            raise UserError(f"input file {path}: permission denied; make it readable by this "
                            "user (chmod u+r) or copy it somewhere you can read") from None
    external.update(cls().input_digests(options, workspace))
    return {
        "backend": f"{cls.stage}.{cls.name}",
        "options": options.model_dump(mode="json"),
        "inputs": {name: ref.content_hash for name, ref in sorted(inputs.items())},
        "external": external,
        "code": code_component(cls, workspace),
    }


def explain(stage: str, workspace: Workspace, components: dict[str, Any]) -> str:
    """Why a stage must run: what differs from its previous artifact."""
    latest = workspace.artifacts / stage / LATEST
    if not latest.exists():
        return "never ran"
    previous_dir = workspace.artifact_dir(stage, latest.read_text().strip())
    if not (previous_dir / MANIFEST).exists():
        return "previous output missing"
    previous = json.loads((previous_dir / MANIFEST).read_text())["components"]
    reasons = []
    if previous["backend"] != components["backend"]:
        reasons.append(f"backend changed ({previous['backend']} -> {components['backend']})")
    changed = sorted(k for k in set(previous["options"]) | set(components["options"])
                     if previous["options"].get(k) != components["options"].get(k))
    if changed:
        reasons.append("options changed: " + ", ".join(changed))
    inputs = sorted(k for k in components["inputs"]
                    if previous["inputs"].get(k) != components["inputs"][k])
    if inputs:
        reasons.append("input changed: " + ", ".join(inputs))
    files = sorted(k for k in set(previous["external"]) | set(components["external"])
                   if previous["external"].get(k) != components["external"].get(k))
    if files:
        reasons.append("input file changed: " + ", ".join(files))
    if previous["code"] != components["code"]:
        reasons += describe_change(previous["code"], components["code"])
    return "; ".join(reasons) or "output missing"
