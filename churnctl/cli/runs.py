"""`churnctl runs`: list past runs and show one run record."""

from __future__ import annotations

from typing import Annotated

import typer

from churnctl.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    new_table,
    print_json,
    workspace_at,
)

app = typer.Typer(help="Past runs recorded in the workspace.", no_args_is_help=True)


@app.command("list")
def list_runs(
    workspace: WorkspaceOption = ".", limit: int = 20, json_out: JsonOption = False
) -> None:
    """List recent runs, newest first.

    Example: churnctl runs list --limit 5
    """
    from churnctl.runs import list_records

    records = list_records(workspace_at(workspace))[:limit]
    if json_out:
        print_json(
            [
                {k: r.get(k) for k in ("run_id", "profile", "status", "seconds", "metrics")}
                for r in records
            ]
        )
        return
    table = new_table(title="runs")
    for column in ("run", "profile", "status", "seconds", "stages", "pr_auc"):
        table.add_column(column)
    for r in records:
        stages = " ".join(f"{s['name']}:{s['status']}" for s in r["stages"])
        pr_auc = r["metrics"].get("pr_auc")
        table.add_row(
            r["run_id"],
            r["profile"],
            r["status"],
            f"{r.get('seconds', 0):.2f}",
            stages,
            f"{pr_auc:.4f}" if pr_auc is not None else "",
        )
    console().print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Show one run record: profile, stages, hashes, metrics, timings.

    Example: churnctl runs show 20261126-0712
    """
    from churnctl.runs import load_record

    record = load_record(workspace_at(workspace), run_id)
    if json_out:
        print_json(record)
        return
    out = console()
    out.print(
        f"run [bold]{record['run_id']}[/] · profile {record['profile']} · {record['status']} "
        f"· {record.get('seconds', 0):.2f}s"
    )
    table = new_table()
    for column in ("stage", "backend", "status", "seconds", "artifact"):
        table.add_column(column)
    for s in record["stages"]:
        table.add_row(
            s["name"],
            s["backend"],
            s["status"],
            f"{s.get('seconds', 0):.2f}",
            s.get("artifact", ""),
        )
    out.print(table)
    train = next((s for s in record["stages"] if s["name"] == "train"), None)
    summary = (train or {}).get("summary") or {}
    if summary.get("chosen"):
        version = f"v{summary['model_version']} " if summary.get("model_version") else ""
        out.print(f"model: {version}{summary['chosen']}, threshold {summary.get('threshold')}"
                  + (f" · {summary['decision']}" if summary.get("decision") else ""))
    for key, value in sorted(record["metrics"].items()):
        out.print(f"  {key}: {value}")
