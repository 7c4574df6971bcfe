"""`churnctl profile upgrade --to TARGET [--gate] [--write]`: plan, gate and switch a project.

Registered on the `profile` group (cli/profile.py); kept apart because the gates run whole
pipelines and the plan renders three formats.
"""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from churnctl.cli.common import (
    ProfileOption,
    WorkspaceOption,
    console,
    err_console,
    escape,
    new_table,
    print_json,
    workspace_at,
)
from churnctl.cli.run import SetOption


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


def upgrade_command(
    to: Annotated[str, typer.Option("--to", help="Target profile: v1..v4 or a YAML path.",
                                    show_default=False)],
    gate: Annotated[bool, typer.Option("--gate", help="Run the target on the same data in a "
                                       "scratch workspace and check the gates.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Write the target into churnctl.yaml "
                                        "when every gate passed (implies --gate).")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="table, json, or markdown (a pull "
                                        "request comment).")] = Format.table,
    overrides: SetOption = [],  # noqa: B006 - typer reads the default, never mutates it
    margin: Annotated[float, typer.Option("--margin", min=0.0, help="How much worse (in the "
                                          "primary metric) the target's model may be.")] = 0.01,
    scratch: Annotated[Path | None, typer.Option("--scratch", file_okay=False, help="Keep the "
                                                 "gate's scratch workspaces here (default: a "
                                                 "temporary directory).")] = None,
    profile: ProfileOption = None,
    workspace: WorkspaceOption = ".",
) -> None:
    """What moving the project from its profile to --to changes; with --gate, whether it is safe.

    The plan: per stage the backend and options, extras to install, services, binaries and
    environment variables (secrets) the target needs, and the Kubernetes objects that appear or
    go away. --gate runs both profiles on the same data (--set applies to both) and checks:
    validate passes, features equal where the features backend changes, the model not worse
    than --margin, scan clean where the target scans. --write changes only `profile:` in
    churnctl.yaml, and only when every gate passed. Exit 1 naming a failed gate, 2 for bad
    input.

    Examples:

      churnctl profile upgrade --to v2

      churnctl profile upgrade --to v2 --format markdown

      churnctl profile upgrade --to v2 --gate --write --set ingest.users=400 --set ingest.days=100
    """
    from churnctl.errors import ChurnctlError, UserError
    from churnctl.parity import Tolerance
    from churnctl.profile import load_profile
    from churnctl.profile_files import find_profile
    from churnctl.settings import resolve_profile_name
    from churnctl.upgrade.gate import require_runnable, run_gates
    from churnctl.upgrade.plan import upgrade_plan
    from churnctl.upgrade.project_file import write_profile
    from churnctl.upgrade.render import markdown, print_table

    root = workspace_at(workspace).root
    current_name = resolve_profile_name(profile, workspace_at(workspace))
    target_path = find_profile(to)
    if find_profile(current_name).resolve() == target_path.resolve():
        raise UserError(f"--to {to}: the project is on {current_name} already; name another "
                        "profile (see `churnctl profile list`)")
    current = load_profile(current_name, overrides)
    target = load_profile(to, overrides)
    plan = upgrade_plan(current, target)
    gate = gate or write
    if gate:
        require_runnable(target)
        folder = scratch or Path(tempfile.mkdtemp(prefix="churnctl-upgrade-"))
        log = (lambda m: None) if fmt != Format.table else \
            (lambda m: err_console().print(f"[dim]{escape(m)}[/]"))
        try:
            gates = run_gates(current, target, root, folder, margin, Tolerance(), log)
        finally:
            if scratch is None:
                shutil.rmtree(folder, ignore_errors=True)
        plan.gates = [g.to_dict() for g in gates]
    failed = [g for g in plan.gates if g["passed"] is False]
    if write and not failed:
        shown = target_path.resolve()
        value = str(shown.relative_to(root)) if shown.is_relative_to(root) and \
            Path(to).suffix in (".yaml", ".yml") else to
        plan.written = str(write_profile(root, value))
    if fmt == Format.json:
        print_json(plan.to_dict())
    elif fmt == Format.markdown:
        typer.echo(markdown(plan), nl=False)
    else:
        print_table(plan, console(), new_table, escape)
    if failed:
        names = ", ".join(g["name"] for g in failed)
        raise ChurnctlError(f"gate failed: {names} ({failed[0]['detail']}); "
                            f"{'churnctl.yaml not changed' if write else 'do not upgrade yet'}")
