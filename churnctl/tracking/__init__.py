"""Experiment tracking around the runner: which runs to log, and runs kept for later.

The pipeline never depends on the tracker. A run is handed to it after its stages finished;
when the tracker fails (an MLflow server that is down), the run still succeeds, its record
says `tracking: pending`, the model stays in the local registry, and `churnctl tracking sync`
logs it later from the run record and the artifacts it points to.

This module is light: the tracker's library is imported by the backend only when it logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

from churnctl.atomic import write_json
from churnctl.errors import UserError
from churnctl.hashing import value_sha256
from churnctl.profile import StageBinding
from churnctl.registry import backend_class, require_available
from churnctl.stages import ArtifactRef, Tracker
from churnctl.workspace import Workspace

PENDING, LOGGED, SKIPPED = "pending", "logged", "skipped"


def tracker_for(binding: StageBinding) -> tuple[Tracker, Any]:
    """The tracker backend and its validated options; says what to install when missing."""
    cls = backend_class("tracking", binding.backend)
    if not issubclass(cls, Tracker):
        raise UserError(f"tracking backend {binding.backend!r} is not a churnctl Tracker")
    require_available(cls)
    return cls(), cls.Options.model_validate(binding.options)


def _state_path(workspace: Workspace, backend: str) -> Path:
    return workspace.state / "tracking" / f"{backend}.json"


def _logged_models(workspace: Workspace, backend: str, store: str) -> set[str]:
    path = _state_path(workspace, backend)
    if not path.exists():
        return set()
    return set(json.loads(path.read_text()).get(store, []))


def _remember_model(workspace: Workspace, backend: str, store: str, artifact: str) -> None:
    path = _state_path(workspace, backend)
    state = json.loads(path.read_text()) if path.exists() else {}
    state[store] = sorted({*state.get(store, []), artifact})
    write_json(path, state)


def _model_artifact(record: dict[str, Any]) -> str | None:
    """Content hash of the run's training artifact (what the registries key models by)."""
    for row in record.get("stages", []):
        if row["name"] == "train" and row.get("outputs"):
            return value_sha256(row["outputs"])
    return None


def _artifact(workspace: Workspace, row: dict[str, Any]) -> ArtifactRef | None:
    if not row.get("artifact"):
        return None
    path = workspace.root / row["artifact"]
    return ArtifactRef.load(path) if (path / "manifest.json").exists() else None


def track_run(binding: StageBinding, workspace: Workspace, record: dict[str, Any], log: Any,
              always: bool = False) -> dict[str, Any]:
    """Log one run; the summary kept in the run record under `tracking`.

    A run that did no stage work and whose model is already in the store is not logged
    again (a no-op run stays fast and the store holds no duplicates), unless `always`.
    """
    tracker, options = tracker_for(binding)
    store = tracker.store(options, workspace)
    summary: dict[str, Any] = {"backend": binding.backend, "store": store}
    model = _model_artifact(record)
    ran = any(row.get("status") in ("ran", "failed") for row in record.get("stages", []))
    if not (always or ran or (model and model not in _logged_models(workspace, binding.backend,
                                                                       store))):
        return {**summary, "status": SKIPPED, "reason": "no stage ran and the model is logged"}
    began = time.perf_counter()
    try:
        tracker.start(options, workspace, record)
        for row in record.get("stages", []):
            tracker.stage_done(row, _artifact(workspace, row))
        result = tracker.finish(record)
    except Exception as exc:  # any tracker failure (server down, disk full): keep the run
        with contextlib.suppress(Exception):  # the store is failing already; warned below
            tracker.abort()
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        reason = re.sub(r"://[^/@\s]+@", "://", reason)  # no user:password from a URI
        log(f"warning: {binding.backend} tracking failed ({reason}); run {record['run_id']} "
            "and its model are kept locally: log them later with `churnctl tracking sync`")
        return {**summary, "status": PENDING, "error": reason}
    if model:
        _remember_model(workspace, binding.backend, store, model)
    aliases = ", ".join(f"@{a}=v{v}" for a, v in result.get("aliases", {}).items())
    registered = (f"; model {result['model_name']} v{result['model_version']} ({aliases})"
                  if result.get("model_version") else "")
    log(f"{binding.backend}: logged run {result.get('tracker_run', '')} to {store}{registered}")
    return {**summary, "status": LOGGED, "seconds": round(time.perf_counter() - began, 3),
            **result}


def pull_production(binding: StageBinding, workspace: Workspace, log: Any) -> None:
    """Before the gate: make the local production what the tracker records (best effort: a
    tracker that cannot be reached leaves the local cache, and the compare-and-set of the
    alias after the run keeps a stale comparison from replacing a newer champion)."""
    tracker, options = tracker_for(binding)
    try:
        tracker.pull_production(options, workspace, log)
    except UserError:
        raise  # a champion whose file does not match its recorded hash: never compare on it
    except Exception:  # server down: compare with the cached production; the tracking step
        return  # after the run says the server is unreachable, once


def unlogged_runs(workspace: Workspace) -> list[dict[str, Any]]:
    """Run records whose tracking is pending, oldest first (the order they must be logged)."""
    from churnctl.runs import list_records

    return [r for r in reversed(list_records(workspace))
            if r.get("tracking", {}).get("status") == PENDING]


def sync(binding: StageBinding, workspace: Workspace, log: Any,
         run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Log pending runs (or the given ones) now; each record is updated in place."""
    from churnctl.runs import load_record, save_record

    records = [load_record(workspace, rid) for rid in run_ids] if run_ids else \
        unlogged_runs(workspace)
    results = []
    for record in records:
        outcome = track_run(binding, workspace, record, log, always=True)
        if outcome["status"] == LOGGED or not run_ids:
            record["tracking"] = outcome
            save_record(workspace, record)
        results.append({"run_id": record["run_id"], **outcome})
        if outcome["status"] == PENDING:
            break  # the store is still failing: keep the rest in order for the next sync
    return results
