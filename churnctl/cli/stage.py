"""`churnctl stage run STAGE`: one pipeline stage, as a DVC stage or a Kubeflow step runs it.

Parameters come from the stage's section of `params.yaml` (which `churnctl run` writes from
the profile) or from `--params-json`; upstream outputs from `data/<upstream>` or `--input`;
the output is exported to `data/<stage>` or `--out`. The stage itself runs through the same
Runner, cache and backends as `churnctl run`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import JsonOption, WorkspaceOption, err_console, print_json, workspace_at

app = typer.Typer(help="Run single pipeline stages (what DVC stages and Kubeflow steps call).",
                  no_args_is_help=True)

StageArg = Annotated[str, typer.Argument(help="Pipeline stage: ingest, validate, features, train.")]
ParamsOption = Annotated[Path, typer.Option(
    "--params", help="Parameters file with one section per stage (relative to the workspace).")]
ParamsJsonOption = Annotated[str | None, typer.Option(
    "--params-json", help="The stage's section as JSON, e.g. '{\"backend\": \"pandas\"}' "
                          "(instead of --params).", show_default=False)]
InputOption = Annotated[list[str], typer.Option(
    "--input", help="NAME=DIR: an upstream stage's output directory "
                    "[default: data/NAME in the workspace] (repeatable).")]
OutOption = Annotated[Path | None, typer.Option(
    "--out", help="Directory to export the output to [default: data/STAGE].",
    show_default=False)]
ForceOption = Annotated[bool, typer.Option(
    "--force", envvar="CHURNCTL_FORCE", help="Ignore churnctl's cache for this stage.")]


@app.command("run")
def run_stage_command(
    stage: StageArg,
    params: ParamsOption = Path("params.yaml"),
    params_json: ParamsJsonOption = None,
    inputs: InputOption = [],  # noqa: B006 - typer reads the default, never mutates it
    out: OutOption = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Run one stage on its upstream outputs and export its output directory.

    Examples:

      churnctl stage run features                      # in a DVC stage (params.yaml, data/)

      churnctl stage run train --params-json '{"backend": "sklearn"}' --input features=/in/f
      --out /out/model
    """
    from churnctl.errors import ChurnctlError, UserError
    from churnctl.lock import workspace_lock
    from churnctl.orchestrators import stage_exec

    ws = workspace_at(workspace)
    err = err_console()

    def log(message: str) -> None:
        err.print(f"  {message}", style="dim", markup=False)

    # Under `churnctl run --profile v2` this process is a member of the run's lock (its token
    # is in the environment DVC passes on); run on its own, it takes the lock.
    with workspace_lock(ws, f"churnctl stage run {stage}", log=log):
        try:
            if params_json is not None:
                try:
                    section = json.loads(params_json)
                except json.JSONDecodeError as exc:
                    raise UserError(f"--params-json: not JSON ({exc.msg})") from None
                source = "--params-json"
            else:
                path = params if params.is_absolute() else ws.root / params
                section = stage_exec.read_params(path).get(stage)
                source = str(path)
            backend, options = stage_exec.section_binding(section, stage, source)
            given = {}
            for item in inputs:
                name, sep, folder = item.partition("=")
                if not sep or not name or not folder:
                    raise UserError(f"--input {item!r}: expected NAME=DIR, e.g. "
                                    "--input ingest=data/ingest")
                given[name] = Path(folder)
            target = out if out is not None else ws.root / stage_exec.DATA_DIR / stage
            metrics = ws.root / stage_exec.METRICS_DIR / f"{stage}.json" if out is None else None
            row = stage_exec.run_stage(ws, stage, backend, options,
                                       stage_exec.input_paths(stage, ws, given), target,
                                       force=force, log=log, metrics_file=metrics, source=source)
        except ChurnctlError as exc:
            stage_exec.save_row(ws, stage, None, (str(exc).splitlines() or [""])[0], exc.exit_code)
            raise
        except Exception as exc:
            stage_exec.save_row(ws, stage, None, f"{type(exc).__name__}: {exc}", 1)
            raise
        stage_exec.save_row(ws, stage, row)
    if json_out:
        print_json(row)
    else:
        err.print(f"{row['status']} {stage} ({backend}) {row['seconds']:.2f}s -> {target}")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="stage")

