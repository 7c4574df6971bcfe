"""`churnctl ab report|promote|alias`: read an A/B test of model variants and act on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    print_json,
    stage_backend,
    workspace_at,
)
from churnctl.errors import UserError

app = typer.Typer(help="A/B tests of model variants (serve backend fastapi-ab, profile v4).",
                  no_args_is_help=True)


def _ab(profile: str | None, workspace: Any) -> tuple[Any, Any]:
    from churnctl.settings import resolve_profile_name

    _, backend, options = stage_backend(resolve_profile_name(profile, workspace), "serve", {},
                                        ("serve",))
    if backend.name != "fastapi-ab":
        raise UserError(f"`churnctl ab` needs the serve backend fastapi-ab (profile v4); this "
                        f"profile's is {backend.name}")
    return backend, options


@app.command("report")
def report_command(
    outcomes: Annotated[Path, typer.Option("--outcomes", help="CSV or Parquet: one row per "
                                           "customer with the outcome (0/1, yes/no).")],
    id_column: Annotated[str, typer.Option("--id-column", help="Customer id column.")
                         ] = "user_id",
    outcome_column: Annotated[str, typer.Option("--outcome-column", help="Outcome column.")
                              ] = "outcome",
    profile: ProfileOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Per-variant outcome rates, the difference with its confidence interval and test,
    the sample-ratio check, and the sample size the MDE needs (no verdict before it).

    Examples:

      churnctl ab report --profile v4 --outcomes outcomes.csv

      churnctl ab report --profile v4 --outcomes outcomes.csv --outcome-column churned --json
    """
    from churnctl.ab.log import read_assignments
    from churnctl.ab.outcomes import read_outcomes, variant_stats
    from churnctl.ab.report import build_report

    ws = workspace_at(workspace)
    backend, options = _ab(profile, ws)
    assignments = read_assignments(backend.log_path(ws, options))
    results = read_outcomes(outcomes, id_column, outcome_column)
    stats = variant_stats(assignments, results, options.variants, outcomes)
    report = build_report(stats, control="champion", **backend.report_options(options))
    if json_out:
        print_json(report.as_dict())
        return
    from churnctl.cli.common import new_table

    table = new_table(title=f"A/B test: {sum(s.assigned for s in stats):,} customers assigned")
    for column in ("variant", "weight", "assigned", "with outcome", "outcomes", "rate"):
        table.add_column(column)
    for s in stats:
        table.add_row(s.variant, f"{s.weight:g}", f"{s.assigned:,}", f"{s.with_outcome:,}",
                      f"{s.outcomes:,}", f"{s.rate:.4f}")
    out = console()
    out.print(table)
    for c in report.comparisons:
        out.print(f"{c.variant} - {c.control}: {c.difference:+.4f} "
                  f"({1 - report.alpha:.0%} CI {c.ci_low:+.4f} .. {c.ci_high:+.4f}), "
                  f"p = {c.p_value:.3g}")
    out.print(f"sample ratio check: p = {report.srm_p_value:.3g}; needed per "
              f"{'champion'}: {report.required_per_variant:,} for an MDE of {report.mde:g}")
    for note in report.notes:
        out.print(f"note: {note}")
    out.print(f"verdict: {report.verdict}")


@app.command("promote")
def promote_command(
    variant: Annotated[str, typer.Argument(help="The variant whose version becomes champion.")],
    profile: ProfileOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Move the champion alias to the version the variant serves.

    Examples:

      churnctl ab promote challenger --profile v4
    """
    from churnctl.ab.aliases import promote_variant

    ws = workspace_at(workspace)
    _, options = _ab(profile, ws)
    version, previous = promote_variant(ws, options, variant)
    if json_out:
        print_json({"variant": variant, "champion": version, "previous": previous})
    else:
        console().print(f"champion: v{previous or '-'} -> v{version} (from variant {variant})")


@app.command("alias")
def alias_command(
    variant: Annotated[str, typer.Argument(help="Variant (alias) name, e.g. challenger.")],
    version: Annotated[int, typer.Argument(help="Model version of the local registry.")],
    profile: ProfileOption = None,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Point a variant's alias at a version of the local registry (MLflow: training does).

    Examples:

      churnctl ab alias challenger 2 --profile v4
    """
    from churnctl.ab.aliases import CHAMPION, LocalAliases
    from churnctl.domain.model_registry import ModelRegistry

    ws = workspace_at(workspace)
    _, options = _ab(profile, ws)
    if variant not in options.variants:
        raise UserError(f"unknown variant {variant!r}: the profile's variants are "
                        f"{', '.join(options.variants)}")
    if variant == CHAMPION:
        raise UserError("the champion moves with `churnctl ab promote VARIANT`")
    if options.model_source != "registry":
        raise UserError("with model_source mlflow the aliases are MLflow's: set them there")
    LocalAliases(ModelRegistry(ws.registry)).set(variant, version)
    console().print(f"alias {variant} -> v{version}")
