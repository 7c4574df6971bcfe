"""Gather a run's report numbers from its artifacts: one JSON-able dict, no plotting.

The same dict goes into the run record (`record["report"]`) and into the HTML, so what the
page shows is exactly what scripts read from the record.
"""

from __future__ import annotations

import json
from typing import Any

from churnctl.errors import UserError
from churnctl.stages import MANIFEST, ArtifactRef
from churnctl.workspace import Workspace


def _artifact(workspace: Workspace, record: dict[str, Any], stage: str) -> ArtifactRef | None:
    """The stage's artifact in this run; for a stage the run skipped, its latest one."""
    from churnctl.runs import latest_artifact

    for row in record.get("stages", []):
        if row["name"] == stage and row.get("artifact"):
            path = workspace.root / row["artifact"]
            if (path / MANIFEST).exists():
                return ArtifactRef.load(path)
            if stage == "train":
                raise UserError(f"run {record['run_id']}: its model artifact {path} is gone; "
                                "re-run `churnctl run` to rebuild it")
    return None if stage == "train" else latest_artifact(workspace, stage)


def _json(ref: ArtifactRef | None, report: str) -> dict[str, Any] | None:
    """A JSON report the stage declared (by name), or None."""
    path = ref.report(report) if ref is not None else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def report_numbers(workspace: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    """Everything the report shows, from the run's train artifact and its inputs."""
    train_ref = _artifact(workspace, record, "train")
    if train_ref is None:
        raise UserError(f"run {record['run_id']} did not train a model; reports need a run "
                        "with a train stage (see `churnctl runs list`)")
    evaluation = _json(train_ref, "evaluation") or {}
    if "roc" not in evaluation:
        raise UserError(f"run {record['run_id']}: its model was trained by an older churnctl "
                        "without report numbers; re-run with `churnctl run --from train`")
    summary = next(r for r in record["stages"] if r["name"] == "train").get("summary", {})
    profile = _json(_artifact(workspace, record, "ingest"), "profile")
    validate_ref = _artifact(workspace, record, "validate")
    validation = _json(validate_ref, "validation")
    docs = validate_ref.report("data_docs") if validate_ref is not None else None
    chosen = evaluation["chosen"]
    return {
        "run_id": record["run_id"],
        "profile": record.get("profile"),
        "started_at": record.get("started_at"),
        "data": _data_section(profile, evaluation),
        "validation": _validation_section(validation),
        # The Great Expectations Data Docs of this run's data (validate.gx), workspace-relative.
        "data_docs": str(docs.relative_to(workspace.root)) if docs is not None
        and docs.is_file() and docs.is_relative_to(workspace.root) else None,
        "model": {
            "chosen": chosen,
            "primary_metric": evaluation["primary_metric"],
            "selection": evaluation.get("selection", "test set"),
            "threshold": evaluation["threshold"],
            "algorithms": {a: {"test": evaluation["models"].get(a), "cv": cv}
                           for a, cv in (evaluation.get("cv") or
                                         dict.fromkeys(evaluation["models"])).items()},
            "search": evaluation.get("search"),
            "platt": evaluation.get("platt"),
        },
        "metrics": evaluation["models"][chosen],
        "roc": evaluation["roc"],
        "pr": evaluation["pr"],
        "calibration": evaluation["calibration"],
        "calibration_before": evaluation.get("calibration_before"),
        "confusion": evaluation["confusion"],
        "gain": evaluation["gain"],
        "importance": evaluation["importance"],
        "leakage": _leakage(evaluation.get("single_feature_auc", {})),
        "comparison": {
            "model_version": summary.get("model_version"),
            "promoted": summary.get("promoted"),
            "decision": summary.get("decision"),
            "incumbent": summary.get("incumbent"),
        },
    }


def _data_section(profile: dict[str, Any] | None, evaluation: dict[str, Any]) -> dict[str, Any]:
    data = evaluation.get("data", {})
    split = {"split": evaluation.get("split"), "train_rows": data.get("train_rows"),
             "test_rows": data.get("test_rows"),
             "train_positive_rate": data.get("train_positive_rate"),
             "test_positive_rate": data.get("test_positive_rate")}
    if profile is None:  # the built-in event data: describe the training set
        columns = [{**c, "role": "feature", "reason": ""} for c in data.get("columns", [])]
        train_rows, test_rows = data.get("train_rows") or 0, data.get("test_rows") or 0
        rows = train_rows + test_rows
        rate = ((data.get("train_positive_rate") or 0) * train_rows
                + (data.get("test_positive_rate") or 0) * test_rows) / max(rows, 1)
        return {"source": {"format": "event data (users + events -> snapshots)"},
                "rows": rows, "columns": len(columns), "target": "churn_label",
                "positive": "1", "target_rate": round(rate, 6), "columns_table": columns,
                "dropped": [], "notices": [], **split}
    return {
        "source": profile["source"],
        "rows": profile["rows"],
        "rows_used": profile["rows_used"],
        "rows_blank_target": profile["rows_blank_target"],
        "columns": len(profile["columns"]),
        "target": profile["target"]["column"],
        "positive": profile["target"]["positive"],
        "negative": profile["target"]["negative"],
        "target_rate": profile["target"]["rate"],
        "id": profile["id"], "time": profile["time"],
        "columns_table": profile["columns"],
        "dropped": [{"name": c["name"], "reason": c["reason"]}
                    for c in profile["columns"] if c["role"] == "dropped"],
        "notices": profile.get("notices", []),
        **split,
    }


def _validation_section(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    checks = report.get("checks", [])
    return {"passed": report.get("passed"), "checks": len(checks),
            "not_passed": [c for c in checks if not c["passed"]]}


def _leakage(aucs: dict[str, float]) -> dict[str, Any]:
    if not aucs:
        return {"feature": None, "auc": None}
    name, auc = max(aucs.items(), key=lambda kv: kv[1])
    return {"feature": name, "auc": auc}
