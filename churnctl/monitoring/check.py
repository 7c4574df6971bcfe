"""One drift check end to end: resolve both sides, compare, write JSON + HTML, maybe retrain.

`<workspace>/reports/drift/latest.json` is the contract with the serving app's /metrics
(see `gauges.py`); it is replaced atomically, so a scrape never reads half a file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churnctl.atomic import write_json, write_text
from churnctl.errors import UserError
from churnctl.monitoring.drift import Thresholds
from churnctl.workspace import Workspace

DRIFT_DIR = ("reports", "drift")
LATEST_JSON = "latest.json"
LATEST_HTML = "latest.html"


def drift_dir(workspace: Workspace) -> Path:
    return workspace.root.joinpath(*DRIFT_DIR)


@dataclass
class CheckRequest:
    reference_run: str | None = None
    reference_set: str = "latest"
    current: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    features: list[str] | None = None
    bins: int = 10
    profile: str = "v1"
    overrides: list[str] = field(default_factory=list)  # --set items for the retraining run
    retrain: bool = False


def _profile_ingest_files(request: CheckRequest, workspace: Workspace) -> dict[str, Path] | None:
    """The profile's users/events files when ingest reads files: new data lands there."""
    from churnctl.profile import load_profile

    binding = load_profile(request.profile, request.overrides).stages["ingest"]
    if binding.backend != "files":
        return None
    return {name: workspace.root / str(binding.options[name]) for name in ("users", "events")
            if name in binding.options} or None


def _features_backend(request: CheckRequest) -> str:
    from churnctl.profile import load_profile

    return load_profile(request.profile, request.overrides).stages["features"].backend


def run_check(workspace: Workspace, request: CheckRequest, log: Any = print) -> dict[str, Any]:
    """Compare reference and current; return the result (also written to reports/drift/)."""
    from churnctl.monitoring import sources
    from churnctl.monitoring.drift import compare, overall_status

    began = time.perf_counter()
    reference = sources.resolve_reference(workspace, request.reference_run, request.reference_set)
    numeric, categorical = sources.select_features(reference, request.features)
    if request.current is not None:
        current = sources.load_current(request.current, reference, workspace)
    else:
        raw = _profile_ingest_files(request, workspace)
        store = (sources.current_from_profile_store(workspace)
                 if raw is None and _features_backend(request) == "feast" else None)
        if store is not None:
            current = store
        elif raw is None:
            raise UserError("no current data: pass --current PATH (a folder with users + events "
                            "files, or a features table), or bind ingest to `files` in the profile")
        else:
            current = sources.snapshot_from_raw(raw, reference)
    if request.retrain and current.kind != "raw" and request.current is not None:
        raise UserError(f"--retrain needs raw data to train on: {request.current} is a features "
                        "table; give --current a folder with users + events files")
    for note in current.notes:
        log(note)
    results = compare(reference.frame(), current.frame, numeric, categorical,
                      request.thresholds, request.bins)
    status = overall_status(results)
    checked = datetime.now(UTC)
    result: dict[str, Any] = {
        "check_id": checked.strftime("%Y%m%d-%H%M%S"),
        "checked_at": checked.isoformat(timespec="seconds"),
        "timestamp": checked.timestamp(),
        "status": status,
        "thresholds": {"warn": request.thresholds.warn, "fail": request.thresholds.fail},
        "reference": {"run_id": reference.run_id, "why": reference.why,
                      "artifact": str(reference.artifact.relative_to(workspace.root)),
                      "set": reference.split},
        "current": {"source": current.source, "kind": current.kind, "as_of": current.as_of,
                    "rows": len(current.frame), "notes": current.notes},
        "failing": [r.name for r in results if r.status == "fail"],
        "warning": [r.name for r in results if r.status == "warn"],
        "features": [r.as_dict() for r in results],
        "retrain": None,
        "seconds": 0.0,
    }
    result["reference"]["rows"] = results[0].n_reference if results else 0
    result["seconds"] = round(time.perf_counter() - began, 3)
    write_outputs(workspace, result)
    if request.retrain and status == "fail":
        result["retrain"] = retrain(workspace, request, current, log)
        write_outputs(workspace, result, html=False)
    return result


def write_outputs(workspace: Workspace, result: dict[str, Any], html: bool = True) -> None:
    """latest.json (what /metrics exports), a dated copy, and the HTML report."""
    folder = drift_dir(workspace)
    if html:
        from churnctl.monitoring.report import render_html

        result["report"] = str(folder / LATEST_HTML)
        write_text(folder / LATEST_HTML, render_html(result))
    write_json(folder / "history" / f"{result['check_id']}.json", result)
    write_json(folder / LATEST_JSON, result)


def retrain(workspace: Workspace, request: CheckRequest, current: Any, log: Any) -> dict[str, Any]:
    """Run the pipeline on the current data; the train stage's promotion gate decides."""
    from churnctl.profile import load_profile
    from churnctl.runner import Runner

    overrides = list(request.overrides)
    if current.raw is not None and request.current is not None:
        # Absolute (ingest resolves relative paths against the workspace, not the caller's
        # directory) and JSON-quoted, so the override's YAML parsing keeps any path a string.
        users, events = (json.dumps(str(current.raw[k].resolve())) for k in ("users", "events"))
        overrides += ["ingest.backend=files", f"ingest.users={users}", f"ingest.events={events}"]
    log(f"drift failed: retraining with profile {request.profile} on {current.source}")
    record = Runner(load_profile(request.profile, overrides), workspace, log=log).execute()
    outcome: dict[str, Any] = {"run_id": record["run_id"], "status": record["status"]}
    for row in record["stages"]:
        if row["name"] == "train":
            summary = row.get("summary", {})
            outcome.update(model_version=summary.get("model_version"),
                           promoted=summary.get("promoted"), decision=summary.get("decision"))
    return outcome
