"""`churnctl parity A B [C ...]`: the same data through each profile, compared per stage."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import JsonOption, console, err_console, escape, new_table, print_json
from churnctl.cli.run import (
    DataOption,
    IdOption,
    PositiveOption,
    SetOption,
    TargetOption,
    TimeOption,
    data_overrides,
)

ProfilesArg = Annotated[list[str], typer.Argument(
    help="Two or more profiles (v1..v4 or YAML paths); the first is the reference.")]
ScratchOption = Annotated[Path | None, typer.Option(
    "--scratch", file_okay=False, help="Keep the scratch workspaces here (default: a temporary "
    "directory, removed afterwards).", show_default=False)]
RtolOption = Annotated[float, typer.Option(
    "--tolerance", min=0.0, help="Relative tolerance for numeric feature values.")]
MetricsTolOption = Annotated[float, typer.Option(
    "--metrics-tolerance", min=0.0, help="Absolute tolerance for stage metrics (pr_auc, ...).")]


def parity_command(
    profiles: ProfilesArg,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    data: DataOption = None,
    target: TargetOption = None,
    id_column: IdOption = None,
    time: TimeOption = None,
    positive: PositiveOption = None,
    scratch: ScratchOption = None,
    tolerance: RtolOption = 1e-6,
    metrics_tolerance: MetricsTolOption = 1e-3,
    json_out: JsonOption = False,
) -> None:
    """Run the same data through each profile and compare every stage boundary with the first.

    Each profile runs in a scratch workspace, with the first profile's ingest (the same data).
    Per stage: table schemas, row counts, values (numeric within --tolerance, rows aligned on
    their keys), labels, the validation verdict and the metrics. Exit 1 when anything differs.

    Examples:

      churnctl parity v1 v2 --set ingest.users=400 --set ingest.days=100

      churnctl parity v1 v3 --json --set ingest.users=400 --set ingest.days=100
    """
    from churnctl.errors import UserError
    from churnctl.parity import Tolerance, parity
    from churnctl.profile import load_profile

    if len(profiles) < 2:
        raise UserError("parity needs two or more profiles, e.g. `churnctl parity v1 v2`")
    root = Path.cwd()
    extra = data_overrides(data, target, id_column, time, positive, root) + overrides
    loaded = [load_profile(name, extra) for name in profiles]
    err = err_console()
    folder = scratch or Path(tempfile.mkdtemp(prefix="churnctl-parity-"))
    try:
        for name in profiles:
            err.print(f"[dim]running {escape(name)} in a scratch workspace under {folder}[/]")
        runs, checks = parity(loaded, folder, Tolerance(tolerance, 1e-9, metrics_tolerance),
                              log=lambda m: None)
    finally:
        if scratch is None:
            shutil.rmtree(folder, ignore_errors=True)
    same = all(c.ok is not False for c in checks) and all(r.error is None for r in runs)
    if json_out:
        print_json({"profiles": [r.profile for r in runs], "same": same,
                    "runs": [{"profile": r.profile, "error": r.error,
                              "failed_stage": r.failed_stage, "backends": r.backends}
                             for r in runs],
                    "checks": [c.to_dict() for c in checks]})
    else:
        print_table(runs, checks)
    if not same:
        raise typer.Exit(1)


def print_table(runs: list[Any], checks: list[Any]) -> None:
    out = console()
    reference = runs[0].profile
    table = new_table(title=f"parity against {reference}")
    for column in ("stage", "check", "table/metrics", "profile", "", "detail"):
        table.add_column(column)
    for c in checks:
        mark = "[green]same[/]" if c.ok else ("[dim]n/a[/]" if c.ok is None else "[red]differs[/]")
        table.add_row(c.stage, c.kind, escape(c.subject), escape(c.profile), mark,
                      escape(c.detail))
    out.print(table)
    for run in runs:
        if run.error:
            out.print(f"[red]{escape(run.profile)}[/] stopped at {run.failed_stage}: "
                      f"{escape(run.error)}")


def register(app: typer.Typer) -> None:
    app.command("parity")(parity_command)
