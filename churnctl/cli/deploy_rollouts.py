"""`churnctl deploy status|promote|abort|retry`: follow and steer an Argo Rollouts canary.

Also the checks `deploy --canary` and `--region/--all-regions` run before touching a cluster.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    print_json,
    workspace_at,
)
from churnctl.errors import UserError

NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace of the Rollout.")
]
ContextOption = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context (default: the current one).")
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="The region's cluster (its kubeconfig context).")
]
NameOption = Annotated[str, typer.Option("--name", help="Name of the Rollout.")]
DEFAULT_NAME = "churnctl-api"


def register(group: typer.Typer) -> None:
    group.command("status")(status_command)
    group.command("promote")(promote_command)
    group.command("abort")(abort_command)
    group.command("retry")(retry_command)
    group.command("analyze")(analyze_command)


def require_rollouts(backend: Any, flag: str) -> None:
    if backend.name != "argo-rollouts":
        raise UserError(f"{flag} needs the deploy backend argo-rollouts (profile v4, or "
                        f"`--set deploy.backend=argo-rollouts`); this profile's is {backend.name}")


def check_model_version(workspace: Any, version: int, profile_name: str) -> None:
    """The version must be in the registry of record before any pod is asked to serve it:
    the MLflow registered model when the profile serves from MLflow, else the local one."""
    from churnctl.profile import load_profile

    profile = load_profile(profile_name)
    serve = profile.stages.get("serve")
    options = dict(serve.options) if serve is not None else {}
    if options.get("model_source") == "mlflow":
        _check_mlflow_version(workspace, version, options, profile)
        return
    from churnctl.domain.model_registry import ModelRegistry

    registry = ModelRegistry(workspace.registry)
    if not registry.index_path.is_file():
        raise UserError(f"--model-version {version}: no model registry at {registry.root}; run "
                        "from the workspace that trained the model (-w DIR)")
    known = [v.version for v in registry.versions()]
    if version not in known:
        raise UserError(f"--model-version {version} is not in the registry at {registry.root} "
                        f"(versions: {', '.join(map(str, known)) or 'none'})")


def _check_mlflow_version(workspace: Any, version: int, options: dict[str, Any],
                          profile: Any) -> None:
    from churnctl.tracking.mlflow_registry import pinned_version
    from churnctl.tracking.mlflow_tracker import resolve_tracking_uri

    tracking = profile.tracking
    uri = options.get("mlflow_tracking_uri") or (
        tracking.options.get("tracking_uri") if tracking and tracking.backend == "mlflow"
        else None)
    if not uri:
        raise UserError("--model-version: the serve stage reads MLflow but names no tracking "
                        "URI (serve.options.mlflow_tracking_uri or tracking.options)")
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(uri, workspace)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = options.get("mlflow_model_name", "churn")
    try:
        pinned_version(client, name, version)
    except UserError as exc:
        raise UserError(f"--model-version {version}: {exc} at {uri}") from None


def region_targets(options: Any, region: str | None, all_regions: bool, overlay: str | None,
                   context: str | None) -> list[tuple[str | None, Any]]:
    """(region, options) per target: a region's overlay and its kubeconfig context."""
    if not (region or all_regions):
        return [(None, options)]
    if overlay:
        raise UserError("--overlay and --region/--all-regions: a region is its own overlay "
                        "(infra/k8s/overlays/REGION); use one of them")
    known = list(options.regions)
    if not known:
        raise UserError("the profile names no regions: set deploy.options.regions, e.g. "
                        "[eu-west-1, us-east-1]")
    if region and region not in known:
        raise UserError(f"unknown region {region!r}: the profile names {', '.join(known)}")
    chosen = known if all_regions else [region]
    targets = []
    for name in chosen:
        target = options.model_copy(deep=True)
        target.overlay = name
        target.context = context or options.region_contexts.get(name) or options.context
        # Each region's canary is judged by its own Prometheus, when the profile names one.
        analysis = target.analysis
        analysis.prometheus_address = analysis.region_prometheus.get(
            name, analysis.prometheus_address)
        targets.append((name, target))
    return targets


def check_canary_start(cluster: Any, objects: list[dict[str, Any]], options: Any) -> str:
    """A canary needs a stable Rollout to compare with, none in progress, and a change."""
    from churnctl.deploy.apply import read_live
    from churnctl.deploy.rollouts.control import in_progress

    rollout = next(o for o in objects if o.get("kind") == "Rollout")
    live = read_live(cluster, rollout)
    where = f"{options.namespace}/{rollout['metadata']['name']}"
    if live is None:
        raise UserError(f"no Rollout {where} yet: a canary needs a stable version to compare "
                        "with; deploy it first with `churnctl deploy --profile v4`")
    status = live.get("status") or {}
    if status.get("abort"):
        raise UserError(f"Rollout {where} is aborted: `churnctl deploy retry` or deploy the "
                        "stable version again")
    if in_progress(live):
        raise UserError(f"Rollout {where} already has a canary in progress (revision "
                        f"{status.get('currentPodHash')}): promote or abort it first")
    if (live.get("spec") or {}).get("template") == rollout["spec"]["template"]:
        raise UserError(f"nothing to roll out: the pod template equals the live one of {where}; "
                        "give a new --image or --model-version")
    return str(status.get("stableRS") or "")


def _connect(profile: str | None, workspace: Path, namespace: str | None, context: str | None,
             region: str | None) -> tuple[Any, Any]:
    from churnctl.cli.deploy import _options
    from churnctl.settings import resolve_profile_name

    backend, options = _options(resolve_profile_name(profile, workspace_at(workspace)),
                                {"namespace": namespace, "context": context})
    require_rollouts(backend, "deploy status|promote|abort|retry")
    if region:
        options = region_targets(options, region, False, None, context)[0][1]
    return backend.connect(options), options


def _print_status(summary: dict[str, Any]) -> None:
    from rich.markup import escape

    out = console()
    step = summary["step"]
    where = f"step {step + 1}/{summary['steps']}" if step is not None and step < summary[
        "steps"] else f"{summary['steps']} steps done"
    flags = " aborted" if summary["aborted"] else (" paused" if summary["paused"] else "")
    out.print(f"Rollout {summary['namespace']}/{summary['name']}: {summary['phase']}{flags}, "
              f"{where} ({escape(summary['current_step'])}); weights canary "
              f"{summary['weights']['canary']}% / stable {summary['weights']['stable']}%")
    out.print(f"  stable revision {summary['stable_revision'] or '-'}, canary revision "
              f"{summary['canary_revision'] or '-'}, model version "
              f"{summary['model_version'] or 'production'}")
    if summary["message"]:
        out.print(f"  {escape(summary['message'])}")
    for run in summary["analysis_runs"]:
        out.print(f"  analysis {run['name']}: {run['phase']} {escape(run['message'])}".rstrip())
        for metric in run["metrics"]:
            values = ", ".join(str(v) for v in metric["values"][-5:])
            out.print(f"    {metric['name']}: {metric['phase']} ({metric['count']} measured, "
                      f"{metric['failed']} failed) {escape(values)}")


def status_command(
    profile: ProfileOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    region: RegionOption = None,
    name: NameOption = DEFAULT_NAME,
    watch: Annotated[bool, typer.Option("--watch", help="Print each change until the rollout "
                                        "is Healthy or Degraded.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1,
                                            help="Seconds between polls with --watch.")] = 2.0,
    timeout: Annotated[float, typer.Option("--timeout", min=0,
                                           help="Give up watching after this long (0: never).")
                       ] = 0.0,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Show the canary: phase, step, weights, analysis runs and their measurements.

    Examples:

      churnctl deploy status --profile v4

      churnctl deploy status --profile v4 --watch --region eu-west-1
    """
    from churnctl.deploy.rollouts.status import FINISHED_PHASES, rollout_status

    cluster, options = _connect(profile, workspace, namespace, context, region)
    started, last = time.monotonic(), None
    try:
        while True:
            summary = rollout_status(cluster, options.namespace, name)
            if summary != last:
                print_json(summary) if json_out else _print_status(summary)
                last = summary
            if not watch or summary["phase"] in FINISHED_PHASES or summary["aborted"]:
                break
            if timeout and time.monotonic() - started > timeout:
                raise UserError(f"Rollout {options.namespace}/{name} still {summary['phase']} "
                                f"after {timeout:g}s of --watch")
            time.sleep(interval)
    finally:
        cluster.close()


def _control(action: str, profile: str | None, workspace: Path, namespace: str | None,
             context: str | None, region: str | None, name: str, json_out: bool,
             **kwargs: Any) -> None:
    from churnctl.deploy.rollouts import control

    cluster, options = _connect(profile, workspace, namespace, context, region)
    try:
        result = getattr(control, action)(cluster, options.namespace, name, **kwargs)
    finally:
        cluster.close()
    done = {"promote": "fully promoted" if kwargs.get("full") else "promoted",
            "abort": "aborted", "retry": "retried"}[action]
    if json_out:
        print_json({"rollout": name, "namespace": options.namespace, "action": done,
                    "patches": result.patches})
    else:
        console().print(f"rollout '{name}' {done}")


def promote_command(
    profile: ProfileOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    region: RegionOption = None,
    name: NameOption = DEFAULT_NAME,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps, pauses and "
                                       "analysis: the canary becomes stable now.")] = False,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Move a paused canary to its next step (or all the way with --full).

    Examples:

      churnctl deploy promote --profile v4

      churnctl deploy promote --profile v4 --full
    """
    _control("promote", profile, workspace, namespace, context, region, name, json_out,
             full=full)


def abort_command(
    profile: ProfileOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    region: RegionOption = None,
    name: NameOption = DEFAULT_NAME,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Abort the canary: all traffic back to the stable revision.

    Examples:

      churnctl deploy abort --profile v4
    """
    _control("abort", profile, workspace, namespace, context, region, name, json_out)


def retry_command(
    profile: ProfileOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    region: RegionOption = None,
    name: NameOption = DEFAULT_NAME,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Run an aborted canary again from its first step.

    Examples:

      churnctl deploy retry --profile v4
    """
    _control("retry", profile, workspace, namespace, context, region, name, json_out)


def analyze_command(
    profile: ProfileOption = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    region: RegionOption = None,
    name: NameOption = DEFAULT_NAME,
    prometheus: Annotated[str | None, typer.Option(
        "--prometheus", help="Prometheus to query (default: the templates' address).")] = None,
    abort_on_failure: Annotated[bool, typer.Option(
        "--abort-on-failure", help="Abort the canary when the analysis fails.")] = False,
    workspace: WorkspaceOption = Path("."),
    json_out: JsonOption = False,
) -> None:
    """Evaluate the canary's analysis now (same PromQL and conditions as Argo).

    Exit code 1 when the analysis fails or errors.

    Examples:

      churnctl deploy analyze --profile v4 --prometheus http://127.0.0.1:9090

      churnctl deploy analyze --profile v4 --abort-on-failure
    """
    from churnctl.deploy.rollouts.check import check_canary

    ws = workspace_at(workspace)
    from churnctl.cli.deploy import _options
    from churnctl.settings import resolve_profile_name

    backend, options = _options(resolve_profile_name(profile, ws),
                                {"namespace": namespace, "context": context})
    require_rollouts(backend, "deploy analyze")
    if region:
        options = region_targets(options, region, False, None, context)[0][1]
    templates = [o for o in backend.render(options) if o.get("kind") == "AnalysisTemplate"]
    cluster = backend.connect(options)
    try:
        result, aborted = check_canary(cluster, options.namespace, name, templates,
                                       address=prometheus, abort_on_failure=abort_on_failure)
    finally:
        cluster.close()
    if json_out:
        print_json({"phase": result.phase, "aborted": aborted, "message": result.message,
                    "metrics": [{"name": m.name, "phase": m.phase, "count": m.count,
                                 "failed": m.failed, "values": [x.value or x.message
                                                                for x in m.measurements]}
                                for m in result.metrics]})
    else:
        out = console()
        out.print(f"analysis of {options.namespace}/{name}: {result.phase}"
                  + (" (canary aborted)" if aborted else ""))
        for metric in result.metrics:
            values = ", ".join(x.value or x.message for x in metric.measurements)
            out.print(f"  {metric.name}: {metric.phase} ({values})", markup=False)
    if result.phase in ("Failed", "Error"):
        raise typer.Exit(1)
