"""`churnctl pipeline compile`: the profile's stages as a KFP v2 pipeline (`--target kubeflow`)
or its features stage as a Spark job for a cluster (`--target spark-submit`)."""

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
    spark_submit = "spark-submit"


TargetOption = Annotated[Target, typer.Option("--target", help="Orchestrator to compile for.")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="File (kubeflow) or directory (spark-submit) to write [default: "
    "churnctl-<profile>-<target>.yaml, or the directory churnctl-<profile>-spark-submit].",
    show_default=False)]
ImageOption = Annotated[str | None, typer.Option(
    "--image", envvar="CHURNCTL_PIPELINE_IMAGE", show_default=False,
    help="Container image each step runs [default: ghcr.io/churnctl/churnctl-pipeline:0.1.0].")]
MasterOption = Annotated[str | None, typer.Option(
    "--master", show_default=False,
    help="spark-submit: the cluster's master URL [default: the profile's features.master when "
         "it is a cluster, else k8s://https://kubernetes.default.svc:443].")]
DataOption = Annotated[str, typer.Option(
    "--data", help="spark-submit: where ingest's tables are (DATA/ingest/users.parquet, "
                   "events.parquet) and the features go (DATA/features).")]
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
    master: MasterOption = None,
    data: DataOption = "s3a://churnctl-data",
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Compile the pipeline stages into a Kubeflow Pipelines v2 pipeline (KFP IR YAML), or
    the features stage into a Spark job (`--target spark-submit`).

    One container step per stage, running `churnctl stage run STAGE` in the pipeline image,
    with the stages' outputs passed as KFP artifacts. Needs the kfp SDK (`churnctl[kubeflow]`).

    Examples:

      churnctl pipeline compile --target kubeflow -o churn-pipeline.yaml

      churnctl pipeline compile --target kubeflow --image registry.local/churnctl-pipeline:1.2

    With --target spark-submit, a directory with the job script (feature_pipeline.py),
    churnctl.zip for --py-files, spark-defaults.conf, spark-submit.sh (the exact command) and
    sparkapplication.yaml for the Kubeflow Spark operator, validated against its CRD schema.
    Needs the pyspark package (`churnctl[spark]`):

      churnctl pipeline compile --target spark-submit --set features.backend=spark -o job

      churnctl pipeline compile --target spark-submit --set features.backend=spark
      --master spark://spark-master:7077 --data s3a://my-bucket/churn -o job
    """
    import importlib.util

    from churnctl.errors import BackendUnavailable
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    loaded = load_profile(resolve_profile_name(profile, workspace_at(workspace)), overrides)
    if target is Target.spark_submit:
        _compile_spark_submit(loaded, output, image, master, data, json_out)
        return
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


def _compile_spark_submit(loaded: object, output: Path | None, image: str | None,
                          master: str | None, data: str, json_out: bool) -> None:
    import importlib.util

    from churnctl.errors import BackendUnavailable

    if importlib.util.find_spec("pyspark") is None:
        raise BackendUnavailable("compiling a Spark job needs pyspark: "
                                 "pip install 'churnctl[spark]'")
    from churnctl.pipelines.spark_submit import DEFAULT_IMAGE, compile_spark_submit

    path = output or Path(f"churnctl-{loaded.name}-spark-submit")
    summary = compile_spark_submit(loaded, path, image or DEFAULT_IMAGE, master, data)
    if json_out:
        print_json(summary)
    else:
        console().print(f"compiled features of {summary['profile']} as a Spark job for "
                        f"{summary['master']} (SparkApplication checked against the "
                        f"spark-operator {summary['spark_operator']} CRD): {path}/",
                        markup=False)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="pipeline")
