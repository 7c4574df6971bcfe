"""`churnctl report [RUN_ID]`: the model report of a run as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import JsonOption, WorkspaceOption, console, print_json, workspace_at


def _latest_trained(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    for record in records:
        if record.get("status") == "succeeded" and any(
                row["name"] == "train" and row.get("artifact") for row in record["stages"]):
            return record
    return None


def report_command(
    run_id: Annotated[str | None, typer.Argument(
        help="Run id (a unique prefix is enough; default: the newest run that trained).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the page here (default: reports/<run id>.html and latest.html).",
        dir_okay=False, show_default=False)] = None,
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Write a run's model report: data profile, what was dropped and why, ROC and PR curves,
    calibration, confusion matrix, gain and lift by decile, feature importance, and the
    comparison with the incumbent model. One HTML file that opens offline.

    The same numbers are kept in the run record (`churnctl runs show RUN_ID --json`).

    Examples:

      churnctl report

      churnctl report 20261126-0712 --out churn-report.html
    """
    from churnctl.errors import UserError
    from churnctl.report import write_run_report
    from churnctl.runs import list_records, load_record

    ws = workspace_at(workspace)
    if run_id is not None:
        record = load_record(ws, run_id)
    else:
        found = _latest_trained(list_records(ws))
        if found is None:
            raise UserError(f"no finished run with a train stage in {ws.runs}; run "
                            "`churnctl run` (or `churnctl run --data PATH --target COLUMN`) first")
        record = found
    path = write_run_report(ws, record, out=out.resolve() if out else None)
    if json_out:
        print_json({"run_id": record["run_id"], "html": str(path), **record["report"]})
        return
    metrics = record["report"]["metrics"]
    console().print(f"report of run {record['run_id']}: {path}  (ROC AUC "
                    f"{metrics['roc_auc']:.3f}, PR AUC {metrics['pr_auc']:.3f})")


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
