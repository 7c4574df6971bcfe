"""`churnctl dvc`: set up the DVC project of a v2 workspace, push and pull its data."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from churnctl.cli.common import JsonOption, ProfileOption, WorkspaceOption, err_console, print_json

app = typer.Typer(help="DVC for the v2 pipeline: set up the project, push and pull its data "
                       "(stage outputs under data/) to the DVC remote.", no_args_is_help=True)

RemoteOption = Annotated[str | None, typer.Option(
    "--remote", "-r", help="DVC remote name [default: the profile's remote, set as default].",
    show_default=False)]


def _setup(profile: str | None, workspace: Any, init_git: bool = False) -> tuple[Any, Any]:
    """The workspace and the DVC orchestrator options of the profile; DVC set up in it."""
    from churnctl.cli.common import workspace_at
    from churnctl.errors import UserError
    from churnctl.orchestrators.dvc_orchestrator import ensure_project
    from churnctl.profile import load_profile
    from churnctl.registry import backend_class, require_available
    from churnctl.settings import resolve_profile_name

    ws = workspace_at(workspace)
    loaded = load_profile(resolve_profile_name(profile, ws))
    if loaded.orchestrator.backend != "dvc":
        raise UserError(f"profile {loaded.name} does not use DVC (orchestrator: "
                        f"{loaded.orchestrator.backend}); use --profile v2")
    cls = backend_class("orchestrator", "dvc")
    require_available(cls)
    options = cls.Options.model_validate(loaded.orchestrator.options)
    ensure_project(ws, options, _log, init_git=init_git)
    return ws, options


def _locked(workspace: Any, command: str) -> Any:
    """The workspace's writer lock: DVC set-up and pull write the workspace (.dvc/, data/), and
    DVC refuses to work beside a running `dvc repro` instead of waiting for it."""
    from churnctl.cli.common import workspace_at
    from churnctl.lock import workspace_lock

    return workspace_lock(workspace_at(workspace), command, log=_log)


def _log(message: str) -> None:
    err_console().print(f"  {message}", style="dim", markup=False)


def _dvc(args: list[str], root: Any) -> None:
    from churnctl.errors import ChurnctlError
    from churnctl.orchestrators.dvc_orchestrator import run_dvc

    code, errors = run_dvc(args, root, _log)
    if code != 0:
        raise ChurnctlError(f"dvc {args[0]} failed: {errors[-1] if errors else f'exit {code}'}")


@app.command("init")
def init_command(
    git: Annotated[bool, typer.Option("--git", help="`git init` the workspace first when it "
                                                    "is in no git repository.")] = False,
    profile: ProfileOption = None,
    workspace: WorkspaceOption = ".",
    json_out: JsonOption = False,
) -> None:
    """Make the workspace a DVC project (in git with --git) with the profile's remote.

    `churnctl run --profile v2` does this by itself (without git unless the profile says
    `init_git: true`); run it first to start in a fresh git repository.

    Example: churnctl dvc init --git --profile v2
    """
    from churnctl.orchestrators.dvc_orchestrator import configured_remote, git_toplevel

    with _locked(workspace, "churnctl dvc init"):
        ws, _ = _setup(profile, workspace, init_git=git)
    result = {"workspace": str(ws.root), "git": git_toplevel(ws.root) is not None,
              "remote": configured_remote(ws.root)}
    if json_out:
        print_json(result)
    else:
        err_console().print(f"DVC project in {result['workspace']} (git: {result['git']}, "
                            f"remote: {result['remote'] or 'none'})")


@app.command("push")
def push_command(remote: RemoteOption = None, profile: ProfileOption = None,
                 workspace: WorkspaceOption = ".") -> None:
    """Upload the pipeline's data (every stage output in dvc.lock) to the DVC remote.

    Example: churnctl dvc push --profile v2
    """
    with _locked(workspace, "churnctl dvc push"):
        ws, _ = _setup(profile, workspace)
        _dvc(["push", *(["--remote", remote] if remote else [])], ws.root)


@app.command("pull")
def pull_command(remote: RemoteOption = None, profile: ProfileOption = None,
                 workspace: WorkspaceOption = ".") -> None:
    """Download the pipeline's data recorded in dvc.lock from the DVC remote into data/.

    After a pull, `churnctl run --profile v2` finds every stage up to date.

    Example: churnctl dvc pull --profile v2
    """
    with _locked(workspace, "churnctl dvc pull"):
        ws, _ = _setup(profile, workspace)
        _dvc(["pull", *(["--remote", remote] if remote else [])], ws.root)


@app.command("status")
def status_command(profile: ProfileOption = None, workspace: WorkspaceOption = ".") -> None:
    """What DVC would re-run (changed deps, params, outputs), as `dvc status` says it.

    Example: churnctl dvc status --profile v2
    """
    ws, _ = _setup(profile, workspace)
    _dvc(["status"], ws.root)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="dvc")
