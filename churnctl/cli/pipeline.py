"""`churnctl pipeline compile --target kubeflow`: the profile's stages as a KFP v2 pipeline."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    print_json,
    workspace_at,
)

app = typer.Typer(help="Compile the profile's pipeline for another orchestrator.",
                  no_args_is_help=True)


class Target(StrEnum):
    kubeflow = "kubeflow"


TargetOption = Annotated[Target, typer.Option("--target", help="Orchestrator to compile for.")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="File to write [default: churnctl-<profile>-<target>.yaml].",
    show_default=False, dir_okay=False)]
ImageOption = Annotated[str | None, typer.Option(
    "--image", envvar="CHURNCTL_PIPELINE_IMAGE", show_default=False,
    help="Container image each step runs [default: ghcr.io/churnctl/churnctl-pipeline:0.1.0].")]
SetOption = Annotated[list[str], typer.Option(
    "--set", help="Override one binding: STAGE.KEY=VALUE (repeatable); becomes the default "
                  "of that stage's pipeline parameter.")]


@app.command("compile")
def compile_command(
    target: TargetOption = Target.kubeflow,
    output: OutputOption = None,
    image: ImageOption = None,
    profile: ProfileOption = None,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Compile the pipeline stages into a Kubeflow Pipelines v2 pipeline (KFP IR YAML).

    One container step per stage, running `churnctl stage run STAGE` in the pipeline image,
    with the stages' outputs passed as KFP artifacts. Needs the kfp SDK (`churnctl[kubeflow]`).

    Examples:

      churnctl pipeline compile --target kubeflow -o churn-pipeline.yaml

      churnctl pipeline compile --target kubeflow --image registry.local/churnctl-pipeline:1.2
    """
    import importlib.util

    from churnctl.errors import BackendUnavailable
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    loaded = load_profile(resolve_profile_name(profile, workspace_at(workspace)), overrides)
    if importlib.util.find_spec("kfp") is None:
        raise BackendUnavailable(
            "compiling for Kubeflow needs the kfp SDK: pip install 'churnctl[kubeflow]' "
            "(in a venv of its own: kfp 2 pins kubernetes<31, which `churnctl deploy` cannot use)")
    from churnctl.pipelines.kubeflow import DEFAULT_IMAGE, compile_pipeline

    path = output or Path(f"churnctl-{loaded.name}-{target.value}.yaml")
    summary = compile_pipeline(loaded, path, image or DEFAULT_IMAGE)
    if json_out:
        print_json(summary)
    else:
        console().print(f"compiled {summary['pipeline']} ({' -> '.join(summary['stages'])}) "
                        f"for Kubeflow Pipelines v2, image {summary['image']}: {path}")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="pipeline")
