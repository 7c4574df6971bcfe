"""`churnctl tracking`: where runs are logged, and logging the ones a tracker missed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    new_table,
    print_json,
    workspace_at,
)

app = typer.Typer(help="Experiment tracking (MLflow in v2): status, and sync of runs kept "
                       "locally while the tracking server was down.", no_args_is_help=True)

RunIdsArg = Annotated[list[str] | None, typer.Argument(
    help="Runs to log (ids or unique prefixes) [default: every run whose tracking is pending].",
    show_default=False)]
UriOption = Annotated[str | None, typer.Option(
    "--tracking-uri", help="Log to this store instead of the profile's (MLFLOW_TRACKING_URI "
                           "also works).", show_default=False)]


def _binding(profile: str | None, workspace: Any, uri: str | None) -> Any:
    from churnctl.errors import UserError
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    loaded = load_profile(resolve_profile_name(profile, workspace))
    if loaded.tracking is None:
        raise UserError(f"profile {loaded.name} has no tracking backend; use --profile v2 "
                        "(or a profile that sets `tracking:`)")
    if uri is None:
        return loaded.tracking
    return loaded.tracking.model_copy(
        update={"options": {**loaded.tracking.options, "tracking_uri": uri}})


@app.command("sync")
def sync_command(
    run_ids: RunIdsArg = None,
    tracking_uri: UriOption = None,
    profile: ProfileOption = None,
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Log runs whose tracking is pending (the tracker was unreachable), oldest first.

    Each run is logged from its run record and the artifacts it points to, its model is
    registered and the champion/challenger aliases follow the local registry. Exit code 1
    when a run could still not be logged.

    Examples:

      churnctl tracking sync --profile v2

      churnctl tracking sync 20260101-120000 --tracking-uri http://127.0.0.1:5000
    """
    from churnctl.lock import workspace_lock
    from churnctl.tracking import LOGGED, sync

    ws = workspace_at(workspace)
    err = err_console()

    def log(message: str) -> None:
        err.print(f"  {message}", style="dim", markup=False)

    binding = _binding(profile, ws, tracking_uri)
    with workspace_lock(ws, "churnctl tracking sync", log=log):  # it rewrites run records
        results = sync(binding, ws, log, run_ids or None)
    if json_out:
        print_json(results)
    elif not results:
        console().print("nothing to sync: no run has pending tracking")
    else:
        for result in results:
            status = result["status"]
            detail = result.get("tracker_run") or result.get("error", "")
            console().print(f"{result['run_id']}: {status} {detail}".rstrip())
    if any(r["status"] != LOGGED for r in results):
        raise typer.Exit(1)


@app.command("status")
def status_command(
    workspace: WorkspaceOption = ".",
    limit: int = 20,
    json_out: JsonOption = False,
) -> None:
    """Per recent run: whether it was logged to the tracker, skipped, or is pending.

    Example: churnctl tracking status
    """
    from churnctl.runs import list_records

    rows = []
    for record in list_records(workspace_at(workspace))[:limit]:
        tracking = record.get("tracking", {})
        rows.append({"run_id": record["run_id"], "profile": record.get("profile"),
                     "status": tracking.get("status", "-"), "store": tracking.get("store", ""),
                     "tracker_run": tracking.get("tracker_run"),
                     "model_version": tracking.get("model_version"),
                     "detail": tracking.get("error") or tracking.get("reason") or ""})
    if json_out:
        print_json(rows)
        return
    table = new_table(title="tracking")
    for column in ("run", "profile", "tracking", "store", "tracker run / why"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["run_id"], str(row["profile"]), row["status"], row["store"],
                      row["tracker_run"] or row["detail"])
    console().print(table)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="tracking")
