"""`churnctl run` and `churnctl plan`: execute the profile's pipeline or explain what it would do.

`--data PATH --target COLUMN` is sugar for the `--set` overrides that switch ingest, validate
and features to the customer-table backends; a run that trains also writes the HTML report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    escape,
    new_table,
    print_json,
    workspace_at,
)

OnlyOption = Annotated[list[str], typer.Option("--only", help="Run only this stage (repeatable).")]
FromOption = Annotated[str | None,
                       typer.Option("--from", help="Re-run this stage and all after it.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Ignore the cache; run every stage.")]
SetOption = Annotated[
    list[str],
    typer.Option("--set", help="Override one binding: STAGE.KEY=VALUE (repeatable), "
                               "e.g. --set ingest.users=5000 or --set ingest.backend=files."),
]

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Your own customer table (CSV, Parquet or Excel; one row per "
                                "customer): switches ingest/validate/features to `table` "
                                "(validate to `gx-table` where the profile validates with GX).",
                 dir_okay=False, show_default=False),
]
TargetOption = Annotated[
    str | None, typer.Option("--target", help="With --data: the churn column (e.g. Churn).",
                             show_default=False)]
IdOption = Annotated[
    str | None, typer.Option("--id", help="With --data: the customer id column (default: a "
                             "unique column named like an id, else row numbers).",
                             show_default=False)]
TimeOption = Annotated[
    str | None, typer.Option("--time", help="With --data: a date column to split by time "
                                            "(default: a stratified random split).",
                             show_default=False)]
PositiveOption = Annotated[
    str | None, typer.Option("--positive", help="With --data: the target value that means "
                             "churned (default: inferred from Yes/No, 1/0, ...).",
                             show_default=False)]

NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Fail at once (exit 2) when another command is writing "
                                         "this workspace, instead of waiting for it.")]

VerifyOption = Annotated[
    bool, typer.Option("--verify", help="Re-hash every cached artifact before trusting it "
                                       "(by default its files' presence and sizes are checked).")]
PromoteOption = Annotated[
    bool, typer.Option("--promote", help="Make this run's model production even when the "
                                        "promotion gate keeps the current one (an override).")]

STATUS_STYLE = {"ran": "green", "cached": "cyan", "failed": "red", "run": "yellow",
                "skip": "dim", "unavailable": "red"}


class StageProgress:
    """A spinner while a stage runs (on a terminal), then one line per stage with its status."""

    def __init__(self, err: Any) -> None:
        self.err = err
        self.status: Any = None

    def __call__(self, stage: str, backend: str, status: str, seconds: float | None = None) -> None:
        if status == "running":
            self.status = self.err.status(f"[bold]{stage}[/] ({backend}) running…")
            self.status.start()
            return
        self.stop()
        if seconds is not None:
            style = STATUS_STYLE.get(status, "white")
            self.err.print(f"[{style}]{status:>6}[/] {stage} ({backend}) {seconds:.2f}s")

    def log(self, message: str) -> None:
        self.err.print(f"  {message}", style="dim", markup=False)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def data_overrides(data: Path | None, target: str | None, id_column: str | None,
                   time: str | None, positive: str | None, workspace: Path,
                   validator: str = "table") -> list[str]:
    """`--data ...` as the `--set` overrides it stands for (explicit --set items still win);
    `validator` is the customer-table validate backend (table_validator)."""
    from churnctl.errors import UserError

    given = {"--target": target, "--id": id_column, "--time": time, "--positive": positive}
    if data is None:
        stray = [flag for flag, value in given.items() if value is not None]
        if stray:
            raise UserError(f"{stray[0]} needs --data PATH (your customer table)")
        return []
    if not target:
        raise UserError(f"--data {data}: also give --target COLUMN, the churn column")
    path = data.resolve()
    root = workspace.resolve()
    # Relative to the workspace when inside it, so a moved project keeps its cache keys.
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    # JSON-quoted values stay strings under YAML parsing ("Yes" would become true, "1" 1).
    options = {"path": str(shown), "target": target, "id": id_column, "time": time,
               "positive": positive}
    overrides = ["ingest.backend=table", f"validate.backend={validator}",
                 "features.backend=table"]
    overrides += [f"ingest.{key}={json.dumps(value)}" for key, value in options.items()
                  if value is not None]
    return overrides


def table_validator(data: Path | None, profile: str | None, workspace: Any) -> str:
    """The validate backend `--data` switches to: the GX gate's table suite when the profile
    validates with GX (v3), else the pandas checks."""
    if data is None:
        return "table"
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    binding = load_profile(resolve_profile_name(profile, workspace_at(workspace))
                           ).stages.get("validate")
    return "gx-table" if binding is not None and binding.backend in ("gx", "gx-spark") \
        else "table"


def _runner(profile: str | None, workspace: Any, overrides: list[str], log: Any,
            verify: bool = False, promote: bool = False) -> Any:
    from churnctl.profile import load_profile
    from churnctl.runner import Runner
    from churnctl.settings import resolve_profile_name

    ws = workspace_at(workspace)
    return Runner(load_profile(resolve_profile_name(profile, ws), overrides), ws, log=log,
                  verify=verify, promote=promote)


def run_command(
    profile: ProfileOption = None,
    only: OnlyOption = [],  # noqa: B006 - typer reads the default, never mutates it
    start: FromOption = None,
    force: ForceOption = False,
    overrides: SetOption = [],  # noqa: B006
    data: DataOption = None,
    target: TargetOption = None,
    id_column: IdOption = None,
    time: TimeOption = None,
    positive: PositiveOption = None,
    no_wait: NoWaitOption = False,
    verify: VerifyOption = False,
    promote: PromoteOption = False,
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Run the pipeline stages (ingest, validate, features, train) of a profile.

    Unchanged stages are reused from the cache; a killed run resumes where it stopped.
    One command writes a workspace at a time: a second run waits for the first (or, with
    --no-wait, stops with exit code 2 naming it).
    A run that trains also writes an HTML report to reports/<run id>.html (and latest.html).

    Examples:

      churnctl run

      churnctl run --data customers.csv --target Churn --id customerID

      churnctl run --profile v1 --set ingest.users=20000

      churnctl run --set ingest.backend=files --set ingest.users=u.csv --set ingest.events=e.csv

      churnctl run --from train --json

      churnctl run --verify
    """
    from churnctl.lock import workspace_lock

    err = err_console()
    progress = StageProgress(err)
    overrides = data_overrides(data, target, id_column, time, positive, workspace,
                               table_validator(data, profile, workspace)) + overrides
    runner = _runner(profile, workspace, overrides, progress.log, verify, promote)
    with workspace_lock(runner.workspace, "churnctl run", wait=not no_wait, log=progress.log):
        try:
            record = runner.execute(only=only, start=start, force=force, progress=progress)
        finally:
            progress.stop()
        report = _write_report(runner.workspace, record, err)
    if json_out:
        print_json(record)
        return
    out = console()
    table = new_table(title=f"run {record['run_id']} · profile {record['profile']}")
    for column in ("stage", "backend", "status", "seconds"):
        table.add_column(column)
    for row in record["stages"]:
        style = STATUS_STYLE.get(row["status"], "white")
        table.add_row(row["name"], row["backend"], f"[{style}]{row['status']}[/]",
                      f"{row['seconds']:.2f}")
    out.print(table)
    if record["metrics"]:
        metrics = new_table(title="metrics")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for key, value in sorted(record["metrics"].items()):
            metrics.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        out.print(metrics)
    for row in record["stages"]:
        if row["summary"].get("decision") and row["status"] == "ran":  # not again on a no-op
            out.print(f"model v{row['summary']['model_version']}: {row['summary']['decision']}")
        if row["summary"].get("data_docs"):
            out.print(f"data docs: {row['summary']['data_docs']}", soft_wrap=True)
    if report is not None:
        out.print(f"report: {report}")


def _write_report(workspace: Any, record: dict[str, Any], err: Any) -> Path | None:
    """After a run that trained (or reused a trained model): the HTML report; its numbers go
    into the run record."""
    import importlib.util

    if not any(row["name"] == "train" for row in record["stages"]):
        return None
    if importlib.util.find_spec("plotly") is None:
        err.print("[yellow]report not written:[/] it needs plotly; pip install 'churnctl[report]'")
        return None
    from churnctl.report import write_run_report

    return write_run_report(workspace, record)


def plan_command(
    profile: ProfileOption = None,
    only: OnlyOption = [],  # noqa: B006
    start: FromOption = None,
    force: ForceOption = False,
    overrides: SetOption = [],  # noqa: B006
    data: DataOption = None,
    target: TargetOption = None,
    id_column: IdOption = None,
    time: TimeOption = None,
    positive: PositiveOption = None,
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Show, per stage, the backend and whether it would run or is cached, and why.

    Nothing runs and no heavy library is imported.

    Examples:

      churnctl plan

      churnctl plan --profile v3 --json

      churnctl plan --data customers.csv --target Churn
    """
    overrides = data_overrides(data, target, id_column, time, positive, workspace,
                               table_validator(data, profile, workspace)) + overrides
    runner = _runner(profile, workspace, overrides, log=lambda _m: None)
    steps = runner.plan(only=only, start=start, force=force)
    rows = [{"stage": s.stage, "backend": s.backend, "status": s.status, "reason": s.reason}
            for s in steps]
    if json_out:
        print_json({"profile": runner.profile.name, "stages": rows})
        return
    table = new_table(title=f"plan · profile {runner.profile.name}")
    for column in ("stage", "backend", "status", "why"):
        table.add_column(column)
    for row in rows:
        style = STATUS_STYLE.get(row["status"], "white")
        table.add_row(row["stage"], row["backend"], f"[{style}]{row['status']}[/]",
                      escape(row["reason"]))
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("plan")(plan_command)
