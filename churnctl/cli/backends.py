"""`churnctl backends` and `churnctl doctor`: what is installed, what a profile still needs."""

from __future__ import annotations

import typer

from churnctl.cli.common import (
    JsonOption,
    ProfileOption,
    WorkspaceOption,
    console,
    escape,
    new_table,
    print_json,
    workspace_at,
)


def backends_command(json_out: JsonOption = False) -> None:
    """List every backend, the stage it serves, and whether it is installed here.

    Example: churnctl backends
    """
    from churnctl.registry import all_backends

    infos = all_backends()
    if json_out:
        print_json(
            [
                {
                    "stage": i.stage,
                    "name": i.name,
                    "target": i.target,
                    "installed": i.installed,
                    "implemented": i.implemented,
                    "missing": i.missing,
                    "install": i.install_hint,
                    "description": i.description,
                }
                for i in infos
            ]
        )
        return
    table = new_table(title="backends")
    for column in ("stage", "backend", "status", "about"):
        table.add_column(column)
    for i in infos:
        if not i.implemented:
            status = "[dim]planned[/]"
        elif i.installed:
            status = "[green]installed[/]"
        else:
            status = f"[yellow]missing {escape(', '.join(i.missing))}[/] → {escape(i.install_hint)}"
        table.add_row(i.stage, i.name, status, i.description)
    console().print(table)


def doctor_command(
    profile: ProfileOption = None, workspace: WorkspaceOption = ".", json_out: JsonOption = False
) -> None:
    """Check the binaries, modules and versions the chosen profile needs.

    Exit code 2 when something the profile needs is missing.

    Example: churnctl doctor --profile v2
    """
    from churnctl.doctor import doctor_checks
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    loaded = load_profile(resolve_profile_name(profile, workspace_at(workspace)))
    rows = [{k: r[k] for k in ("binding", "backend", "ok", "detail")}
            for r in doctor_checks(loaded)]
    healthy = all(r["ok"] for r in rows)
    if json_out:
        print_json({"profile": loaded.name, "ok": healthy, "checks": rows})
    else:
        table = new_table(title=f"doctor · profile {loaded.name}")
        for column in ("binding", "backend", "", "detail"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r["binding"], r["backend"], "[green]✓[/]" if r["ok"] else "[red]✗[/]",
                escape(r["detail"]),
            )
        console().print(table)
    if not healthy:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("backends")(backends_command)
    app.command("doctor")(doctor_command)
