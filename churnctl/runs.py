"""Run records: one JSON file per run in the workspace, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from churnctl.atomic import write_json
from churnctl.errors import UserError
from churnctl.stages import ArtifactRef
from churnctl.workspace import Workspace


def save_record(workspace: Workspace, record: dict[str, Any]) -> Path:
    path = workspace.runs / f"{record['run_id']}.json"
    write_json(path, record)
    return path


def list_records(workspace: Workspace) -> list[dict[str, Any]]:
    """All run records, newest first."""
    if not workspace.runs.exists():
        return []
    paths = sorted(workspace.runs.glob("*.json"), reverse=True)
    return [json.loads(path.read_text()) for path in paths]


def load_record(workspace: Workspace, run_id: str) -> dict[str, Any]:
    path = workspace.runs / f"{run_id}.json"
    if not path.exists():
        matches = sorted(workspace.runs.glob(f"{run_id}*.json")) if workspace.runs.exists() else []
        if len(matches) != 1:
            raise UserError(f"no run {run_id!r} in {workspace.runs}; see `churnctl runs list`")
        path = matches[0]
    return json.loads(path.read_text())


def latest_artifact(workspace: Workspace, stage: str) -> ArtifactRef | None:
    """The output of `stage` in the newest run that completed it, if it still exists."""
    for record in list_records(workspace):
        for row in record.get("stages", []):
            if row["name"] == stage and row["status"] in ("ran", "cached") and row.get("artifact"):
                path = workspace.root / row["artifact"]
                if path.exists():
                    return ArtifactRef.load(path)
    return None
