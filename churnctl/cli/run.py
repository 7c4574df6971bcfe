"""`churnctl run` and `churnctl plan`: execute the profile's pipeline or explain what it would do."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    print_json,
    workspace_at,
)

OnlyOption = Annotated[list[str], typer.Option("--only", help="Run only this stage (repeatable).")]
FromOption = Annotated[str | None, typer.Option("--from", help="Re-run this stage and all after it.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Ignore the cache; run every stage.")]
SetOption = Annotated[
    list[str],
    typer.Option("--set", help="Override one binding: STAGE.KEY=VALUE (repeatable), "
                               "e.g. --set ingest.users=5000 or --set ingest.backend=files."),
]

STATUS_STYLE = {"ran": "green", "cached": "cyan", "failed": "red", "run": "yellow",
                "skip": "dim", "unavailable": "red"}


def _runner(profile: str | None, workspace: Any, overrides: list[str], log: Any) -> Any:
    from churnctl.profile import load_profile
    from churnctl.runner import Runner
    from churnctl.settings import resolve_profile_name

    ws = workspace_at(workspace)
    return Runner(load_profile(resolve_profile_name(profile, ws), overrides), ws, log=log)


def run_command(
    profile: ProfileOption = None,
    only: OnlyOption = [],  # noqa: B006 - typer reads the default, never mutates it
    start: FromOption = None,
    force: ForceOption = False,
    overrides: SetOption = [],  # noqa: B006
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Run the pipeline stages (ingest, validate, features, train) of a profile.

    Unchanged stages are reused from the cache; a killed run resumes where it stopped.

    Examples:

      churnctl run

      churnctl run --profile v1 --set ingest.users=20000

      churnctl run --set ingest.backend=files --set ingest.users=data/users.csv --set ingest.events=data/events.csv

      churnctl run --from train --json
    """
    err = err_console()

    def log(message: str) -> None:
        err.print(f"  {message}", style="dim", markup=False)

    def progress(stage: str, backend: str, status: str, seconds: float | None = None) -> None:
        if status == "running":
            err.print(f"[bold]{stage}[/] ({backend}) …")
        elif seconds is not None:
            style = STATUS_STYLE.get(status, "white")
            err.print(f"[{style}]{status:>6}[/] {stage} ({backend}) {seconds:.2f}s")

    runner = _runner(profile, workspace, overrides, log)
    record = runner.execute(only=only, start=start, force=force, progress=progress)
    if json_out:
        print_json(record)
        return
    out = console()
    table = Table(title=f"run {record['run_id']} · profile {record['profile']}")
    for column in ("stage", "backend", "status", "seconds"):
        table.add_column(column)
    for row in record["stages"]:
        style = STATUS_STYLE.get(row["status"], "white")
        table.add_row(row["name"], row["backend"], f"[{style}]{row['status']}[/]",
                      f"{row['seconds']:.2f}")
    out.print(table)
    if record["metrics"]:
        metrics = Table(title="metrics")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for key, value in sorted(record["metrics"].items()):
            metrics.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        out.print(metrics)
    for row in record["stages"]:
        if row["summary"].get("decision"):
            out.print(f"model v{row['summary']['model_version']}: {row['summary']['decision']}")


def plan_command(
    profile: ProfileOption = None,
    only: OnlyOption = [],  # noqa: B006
    start: FromOption = None,
    force: ForceOption = False,
    overrides: SetOption = [],  # noqa: B006
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Show, per stage, the backend and whether it would run or is cached, and why.

    Nothing runs and no heavy library is imported.

    Examples:

      churnctl plan

      churnctl plan --profile v3 --json
    """
    runner = _runner(profile, workspace, overrides, log=lambda _m: None)
    steps = runner.plan(only=only, start=start, force=force)
    rows = [{"stage": s.stage, "backend": s.backend, "status": s.status, "reason": s.reason}
            for s in steps]
    if json_out:
        print_json({"profile": runner.profile.name, "stages": rows})
        return
    table = Table(title=f"plan · profile {runner.profile.name}")
    for column in ("stage", "backend", "status", "why"):
        table.add_column(column)
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "white")
        table.add_row(row["stage"], row["backend"], f"[{style}]{row['status']}[/]", row["reason"])
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("plan")(plan_command)
