"""`churnctl ci init --github`: GitHub Actions workflows for a churnctl project."""

from __future__ import annotations

from typing import Annotated

import typer

from churnctl.cli.common import WorkspaceOption, console, workspace_at

app = typer.Typer(help="Continuous integration for a churnctl project.", no_args_is_help=True)


@app.command("init")
def init(
    github: Annotated[bool, typer.Option("--github", help="Write GitHub Actions workflows "
                                         "(the only CI supported so far).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing workflow "
                                        "files.")] = False,
    extras: Annotated[str | None, typer.Option("--extras", help="churnctl extras CI installs "
                                               "(default: the project's profile, e.g. v2).",
                                               show_default=False)] = None,
    package: Annotated[str, typer.Option("--package", help="What pip installs: churnctl, a "
                                         "pinned churnctl==X, or . for a checkout.")] = "churnctl",
    python: Annotated[str, typer.Option("--python", help="Python version of the jobs.")] = "3.11",
    workspace: WorkspaceOption = ".",
) -> None:
    """Write .github/workflows/ci.yml, security.yml and upgrade.yml into the project.

    ci.yml: lint, tests, `churnctl run`. security.yml: `churnctl scan` with one SARIF upload per
    tool. upgrade.yml: on a pull request that changes churnctl.yaml (or weekly, to the profile in
    the CHURNCTL_UPGRADE_TO repository variable), `churnctl profile upgrade --gate --format
    markdown` posted as a comment; a failed gate fails the check.

    Examples:

      churnctl ci init --github

      churnctl ci init --github --force --extras v2
    """
    from churnctl.ci_init import default_extras, write_workflows
    from churnctl.errors import UserError
    from churnctl.settings import resolve_profile_name

    if not github:
        raise UserError("name the CI to write for: churnctl ci init --github")
    ws = workspace_at(workspace)
    chosen = extras or default_extras(resolve_profile_name(None, ws))
    for path in write_workflows(ws.root, package, chosen, python, force):
        console().print(f"wrote {path.relative_to(ws.root)}")
