"""The `churnctl` command: joins the command modules and turns known errors into one line."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from churnctl import __version__
from churnctl.cli import (
    ab,
    backends,
    ci,
    data,
    deploy,
    dvc,
    features,
    monitor,
    parity,
    pipeline,
    profile,
    report,
    run,
    runs,
    scan,
    serve,
    stage,
    stream,
    tracking,
    validate,
)
from churnctl.cli.common import debug_enabled, err_console, escape
from churnctl.errors import ChurnctlError


class ChurnctlGroup(TyperGroup):
    """Prints a ChurnctlError as one line per problem and exits with its code (2 = bad input)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ChurnctlError as exc:
            if debug_enabled():
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                err_console().print(f"[bold red]error:[/] {escape(line)}")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=ChurnctlGroup,
    name="churnctl",
    help=(
        "Run a customer-churn ML system: ingest, validate, features, train, serve, deploy. "
        "A profile (v1..v4 or your own YAML) picks the backend of each stage.\n\n"
        "\b\nExamples:\n"
        "  churnctl run                  # the v1 pipeline on built-in synthetic data\n"
        "  churnctl plan --profile v2    # what would run, what is cached, and why\n"
        "  churnctl profile diff v1 v2   # what moving a team to v2 changes\n"
        "  churnctl run --data customers.csv --target Churn   # your own table\n\n"
        "Set CHURNCTL_DEBUG=1 to see tracebacks."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it with rich imports ~0.15 s of modules, over half of the
    # 0.25 s start-up budget.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"churnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """churnctl: one CLI for a churn ML system, profile-driven."""


for module in (run, backends, serve, report, deploy, monitor, stage, pipeline, tracking, dvc,
               scan, parity, stream):
    module.register(app)
app.add_typer(profile.app, name="profile")
app.add_typer(data.app, name="data")
app.add_typer(ci.app, name="ci")
app.add_typer(runs.app, name="runs")
app.add_typer(validate.app, name="validate")
app.add_typer(features.app, name="features")
app.add_typer(ab.app, name="ab")


def main() -> None:
    # Pydantic's plugin discovery scans every installed package's entry points (~15 ms);
    # plugins (observability hooks) have nothing to do in a short-lived CLI process.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    app()
