"""`churnctl deploy`: render, validate, diff and apply the Kubernetes manifests of a profile."""

from __future__ import annotations

from enum import StrEnum
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
    stage_backend,
    workspace_at,
)
from churnctl.errors import ChurnctlError, UserError

DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Render and validate only; needs no cluster."),
]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace to deploy into.")
]
ContextOption = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")
]
OverlayOption = Annotated[
    str | None,
    typer.Option("--overlay", help="staging, production, or a path to a kustomize directory."),
]
ImageOption = Annotated[
    str | None, typer.Option("--image", help="Image of the API, e.g. ghcr.io/me/churnctl:1.2.0.")
]
PipelineImageOption = Annotated[
    str | None,
    typer.Option("--pipeline-image", help="Image of the batch-scoring and retraining CronJobs."),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", file_okay=False, help="Also write the manifests to DIR/manifests.yaml."),
]
ForceOption = Annotated[
    bool,
    typer.Option("--force-conflicts", help="Take over fields another field manager owns."),
]


class OutputFormat(StrEnum):
    """An Enum, not click_type: the kfp environment's typer has no click_type."""

    yaml = "yaml"
    json = "json"


OUTPUT_FORMATS = tuple(f.value for f in OutputFormat)
OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        help="Print the objects as yaml (a multi-document stream) or json (a v1 List) on "
        "stdout, nothing else: the rendered ones with --dry-run, the applied ones otherwise.",
        show_default=False,
    ),
]


CanaryOption = Annotated[
    bool,
    typer.Option("--canary", help="Start an Argo Rollouts canary of a new image or model "
                 "version (deploy backend argo-rollouts, profile v4)."),
]
ModelVersionOption = Annotated[
    int | None,
    typer.Option("--model-version", min=1, show_default=False,
                 help="Registry version the API pods serve (argo-rollouts)."),
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="Deploy to one region of the profile (overlay of that name)."),
]
AllRegionsOption = Annotated[
    bool,
    typer.Option("--all-regions", help="Every region of the profile, one after the other; "
                 "stops at the first failure."),
]


def register(app: typer.Typer) -> None:
    from churnctl.cli import deploy_rollouts

    group = typer.Typer(invoke_without_command=True, rich_markup_mode=None)
    group.callback()(deploy)
    deploy_rollouts.register(group)
    app.add_typer(group, name="deploy")


def _options(profile: str, overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The profile's deploy backend and its options, CLI flags winning over the profile."""
    from churnctl.registry import require_available

    given = {key: value for key, value in overrides.items() if value not in (None, False)}
    _, backend, options = stage_backend(profile, "deploy", given,
                                        ("render", "validate", "connect", "diff", "apply"))
    require_available(type(backend))
    return backend, options


def _human(output: str | None) -> Any:
    """Where messages for people go: stdout, unless stdout carries the objects (`-o`)."""
    return err_console() if output else console()


def _table(
    title: str, rows: list[dict[str, str]], columns: tuple[str, ...], output: str | None
) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(row.get(column, "") for column in columns))
    _human(output).print(table)


def format_objects(objects: list[dict[str, Any]], output: str) -> str:
    """The objects as `kubectl ... -o yaml|json` prints them: a YAML stream or a v1 List."""
    import json

    from churnctl.deploy.render import to_yaml

    if output == "yaml":
        return to_yaml(objects)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"


def _print_objects(objects: list[dict[str, Any]], output: str) -> None:
    # Plain text, not rich: rich would wrap long lines and read `[...]` as markup.
    typer.echo(format_objects(objects, output), nl=False)


def _print_diffs(diffs: list[Any], output: str | None) -> None:
    from rich.syntax import Syntax

    out = _human(output)
    for item in diffs:
        if item.diff and item.action != "unchanged":
            out.print(Syntax(item.diff, "diff", theme="ansi_dark", background_color="default"))
    counts = {a: sum(d.action == a for d in diffs) for a in ("create", "update", "unchanged")}
    out.print(
        f"diff: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged"
    )


def deploy(
    ctx: typer.Context,
    profile: ProfileOption = None,
    dry_run: DryRunOption = False,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    overlay: OverlayOption = None,
    image: ImageOption = None,
    pipeline_image: PipelineImageOption = None,
    canary: CanaryOption = False,
    model_version: ModelVersionOption = None,
    region: RegionOption = None,
    all_regions: AllRegionsOption = False,
    out: OutOption = None,
    force_conflicts: ForceOption = False,
    output: OutputOption = None,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Deploy the API and the batch CronJobs to Kubernetes.

    Renders the kustomize overlay (infra/k8s), validates every object
    against the Kubernetes schemas offline, prints a diff against the
    cluster (a server-side apply dry run, so removed fields show) and
    applies it server-side (field manager "churnctl").
    --dry-run needs no cluster; with -o yaml it prints the manifests
    (as kubectl's --dry-run=client -o yaml does) and nothing else.
    With profile v4 (backend argo-rollouts) the API is an Argo Rollout:
    --canary starts a canary with analysis; see `deploy status|promote|
    abort|retry`.

    Examples:

      churnctl deploy --dry-run

      churnctl deploy --dry-run -o yaml

      churnctl deploy --dry-run --overlay production --out build/k8s

      churnctl deploy --context kind-churn --namespace churn-dev

      churnctl deploy --overlay production --image ghcr.io/me/churnctl:1.2.0

      churnctl deploy --profile v4 --dry-run --all-regions

      churnctl deploy --profile v4 --canary --model-version 2 --region eu-west-1
    """
    if ctx.invoked_subcommand is not None:
        return
    from churnctl.settings import resolve_profile_name

    output = OutputFormat(output).value if output else None  # plain text from here on
    if output and json_out:
        raise UserError("--json and --output print different things to stdout: use one of them")
    if region and all_regions:
        raise UserError("--region and --all-regions: use one of them")
    ws = workspace_at(workspace)
    profile_name = resolve_profile_name(profile, ws)
    overrides = {
        "namespace": namespace,
        "context": context,
        "overlay": overlay,
        "image": image,
        "pipeline_image": pipeline_image,
        "force_conflicts": force_conflicts,
    }
    if canary or model_version is not None or region or all_regions:
        from churnctl.cli.deploy_rollouts import region_targets, require_rollouts

        backend, options = _options(profile_name, {**overrides, "model_version": model_version})
        require_rollouts(backend, "--canary" if canary else "--model-version/--region")
        if model_version is not None:
            from churnctl.cli.deploy_rollouts import check_model_version

            check_model_version(ws, model_version, profile_name)
        targets = region_targets(options, region, all_regions, overlay, context)
    else:
        backend, options = _options(profile_name, overrides)
        targets = [(None, options)]
    results: list[dict[str, Any]] = []
    for index, (name, target) in enumerate(targets):
        try:
            target_out = out / name if out is not None and name and len(targets) > 1 else out
            results.append(_deploy_one(profile_name, backend, target, dry_run=dry_run,
                                       out=target_out, output=output, json_out=json_out,
                                       canary=canary))
        except ChurnctlError as exc:
            if name is None or len(targets) == 1:
                raise
            done = [t[0] for t in targets[:index]]
            rest = [t[0] for t in targets[index + 1:]]
            raise type(exc)(f"region {name}: {exc} (done: {', '.join(done) or 'none'}; not "
                            f"started: {', '.join(rest) or 'none'})") from None
        if name is not None and not json_out:
            _human(output).print(f"region {name}: {'valid' if dry_run else 'done'}")
    if json_out:
        print_json(results[0] if len(targets) == 1 else {"regions": results})


def _deploy_one(
    profile_name: str,
    backend: Any,
    options: Any,
    *,
    dry_run: bool,
    out: Path | None,
    output: str | None,
    json_out: bool,
    canary: bool,
) -> dict[str, Any]:
    """Render, validate, diff and apply one target (an overlay, or one region's)."""
    from churnctl.deploy.render import summarize, write_manifests

    objects = backend.render(options)
    report = backend.validate(options, objects)
    summary = summarize(objects)
    result: dict[str, Any] = {
        "profile": profile_name,
        "backend": backend.name,
        "overlay": options.overlay,
        "namespace": options.namespace,
        "kubernetes_version": report.kubernetes_version,
        "dry_run": dry_run,
        "objects": summary,
        "warnings": report.warnings,
        "errors": report.errors,
    }
    if not json_out:
        from rich.markup import escape

        for warning in report.warnings:
            err_console().print(f"[yellow]warning:[/] {escape(warning)}")
    if not report.ok:
        if json_out:
            print_json(result)
        raise UserError(
            f"{len(report.errors)} problem(s) in the rendered manifests (Kubernetes "
            f"{report.kubernetes_version} schemas); fix infra/k8s or the overlay:\n"
            + "\n".join(report.errors)
        )
    if out is not None:
        result["manifests"] = str(write_manifests(objects, out))

    if dry_run:
        if json_out:
            return result
        if output:
            _print_objects(objects, output)
        else:
            _table(
                f"{len(objects)} objects, overlay {options.overlay}, valid for Kubernetes "
                f"{report.kubernetes_version}",
                summary,
                ("kind", "name", "namespace"),
                output,
            )
        if out is not None:
            _human(output).print(f"wrote {result['manifests']}")
        return result

    cluster = backend.connect(options)
    try:
        if canary:
            from churnctl.cli.deploy_rollouts import check_canary_start

            result["stable_revision"] = check_canary_start(cluster, objects, options)
        diffs = backend.diff(cluster, objects, options)
        if not json_out:
            _print_diffs(diffs, output)
        applied = backend.apply(cluster, objects, options, diffs=diffs)
    finally:
        cluster.close()
    result["context"] = cluster.context
    result["diff"] = [d.as_dict() for d in diffs]
    result["applied"] = [a.as_dict() for a in applied]
    if json_out:
        return result
    _table(
        f"applied to {cluster.host}",
        result["applied"],
        ("kind", "name", "namespace", "action"),
        output,
    )
    if output:
        _print_objects([a.live for a in applied], output)
    if canary:
        _human(output).print("canary started: follow it with `churnctl deploy status --watch`")
    return result
