"""`churnctl monitor drift`: PSI/KS drift between the training reference and current data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    print_json,
    workspace_at,
)

app = typer.Typer(help="Watch the model's inputs: feature drift, auto-retraining.",
                  no_args_is_help=True)

ReferenceOption = Annotated[
    str | None,
    typer.Option("--reference", help="Run id (a unique prefix is enough) whose features are the "
                 "reference (default: the run that trained the production model)."),
]
ReferenceSetOption = Annotated[
    str,
    typer.Option("--reference-set", help="Which rows of the reference run: latest (its newest "
                 "snapshot, like-for-like with --current), train or test."),
]
CurrentOption = Annotated[
    Path | None,
    typer.Option("--current", envvar="CHURNCTL_DRIFT_CURRENT",
                 help="A folder with users + events files, a features folder (latest.parquet) or "
                 "a features table (default: the profile's ingest files)."),
]
RetrainOption = Annotated[
    bool | None,
    typer.Option("--retrain/--no-retrain", help="On fail, run the pipeline on the current data; "
                 "the promotion gate decides (default: the profile's monitoring.retrain_on_fail)."),
]
WarnOption = Annotated[
    float | None,
    typer.Option("--warn", min=0.0, help="PSI at which a feature warns (default 0.1)."),
]
FailOption = Annotated[
    float | None,
    typer.Option("--fail", min=0.0, help="PSI at which a feature fails (default 0.25)."),
]
FeaturesOption = Annotated[
    str | None,
    typer.Option("--features", help="Comma-separated features to check (default: all)."),
]
BinsOption = Annotated[
    int, typer.Option("--bins", min=2, max=50, help="Quantile bins for numeric features.")]
SetOption = Annotated[
    list[str],
    typer.Option("--set", help="Profile override for the retraining run: STAGE.KEY=VALUE."),
]
STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def _monitoring_options(profile: str, overrides: list[str]) -> Any:
    """The profile's monitoring options, validated, defaults filled (v1 has no binding)."""
    from churnctl.backends.monitoring_prometheus import PrometheusMonitoringOptions
    from churnctl.profile import load_profile

    binding = load_profile(profile, overrides).monitoring
    return PrometheusMonitoringOptions.model_validate(binding.options if binding else {})


@app.command("drift")
def drift(
    reference: ReferenceOption = None,
    reference_set: ReferenceSetOption = "latest",
    current: CurrentOption = None,
    retrain: RetrainOption = None,
    warn: WarnOption = None,
    fail: FailOption = None,
    features: FeaturesOption = None,
    bins: BinsOption = 10,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    profile: ProfileOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Compare each feature's distribution now with the production model's reference.

    PSI per feature (reference deciles, or categories) and a KS test for numeric features.

    Writes reports/drift/latest.json (exported on /metrics) and reports/drift/latest.html.

    Exit code 2 when a feature reaches the fail threshold, also after retraining.

    Examples:

      churnctl monitor drift --current data/today/

      churnctl monitor drift --current data/today/ --retrain --json

      churnctl monitor drift --current features.parquet --features country,events_30d --fail 0.2
    """
    from contextlib import nullcontext

    from churnctl.lock import workspace_lock
    from churnctl.monitoring.check import CheckRequest, run_check
    from churnctl.monitoring.drift import Thresholds
    from churnctl.settings import resolve_profile_name

    ws = workspace_at(workspace)
    profile_name = resolve_profile_name(profile, ws)
    configured = _monitoring_options(profile_name, overrides)
    thresholds = Thresholds(
        warn=warn if warn is not None else configured.psi_warn,
        fail=fail if fail is not None else configured.psi_fail,
    )
    wanted = [f.strip() for f in features.split(",") if f.strip()] if features else None
    request = CheckRequest(
        reference_run=reference, reference_set=reference_set, current=current,
        thresholds=thresholds, features=wanted, bins=bins, profile=profile_name,
        overrides=list(overrides),
        retrain=retrain if retrain is not None else configured.retrain_on_fail,
    )
    err = err_console()

    def log(message: str) -> None:
        err.print(f"  {message}", style="dim", markup=False)

    # A check only reads the workspace (its reports go to reports/drift/); one that may retrain
    # writes it, so it holds the lock from the check through the retraining run.
    locked = (workspace_lock(ws, "churnctl monitor drift --retrain", log=log) if request.retrain
              else nullcontext())
    with locked:
        result = run_check(ws, request, log=log)
    if json_out:
        print_json(result)
    else:
        _print(result)
    if result["status"] == "fail":
        raise typer.Exit(2)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    ref = result["reference"]
    table = Table(title=f"drift · reference run {ref['run_id']} ({ref['set']}) · "
                        f"current {result['current']['rows']:,} rows")
    for column, justify in (("feature", "left"), ("kind", "left"), ("PSI", "right"),
                            ("KS p-value", "right"), ("status", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in sorted(result["features"], key=lambda f: -f["psi"]):
        ks = f"{f['ks_pvalue']:.3g}" if f["ks_pvalue"] is not None else ""
        table.add_row(f["name"], f["kind"], f"{f['psi']:.4f}", ks,
                      f"[{STYLE[f['status']]}]{f['status']}[/]")
    out.print(table)
    status = result["status"]
    detail = ""
    if result["failing"]:
        detail = f": {', '.join(result['failing'])} at or above PSI {result['thresholds']['fail']}"
    elif result["warning"]:
        detail = f": {', '.join(result['warning'])} at or above PSI {result['thresholds']['warn']}"
    out.print(f"drift [{STYLE[status]}]{status}[/]{detail}")
    retrained = result.get("retrain")
    if retrained:
        version = retrained.get("model_version")
        out.print(f"retrained in run {retrained['run_id']}: model v{version}: "
                  f"{retrained.get('decision') or retrained['status']}")
    out.print(f"report: {result.get('report')}")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="monitor")
