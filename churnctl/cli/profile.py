"""`churnctl profile`: list, show, diff, validate profiles and print their JSON schema."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer

from churnctl.cli.common import JsonOption, console, escape, new_table, print_json

app = typer.Typer(
    help="Inspect and check profiles (which backend serves each stage).", no_args_is_help=True
)

STAGES = ("ingest", "validate", "features", "train", "serve", "deploy")

# A password inside an option value (Redis's `host:port,password=...`) is never printed.
_PASSWORD = re.compile(r"(password=)[^,\"']*", re.IGNORECASE)

NameArg = Annotated[str, typer.Argument(help="Shipped profile name (v1..v4) or a YAML path.")]


@app.command("list")
def list_profiles(json_out: JsonOption = False) -> None:
    """List the shipped profiles.

    Example: churnctl profile list
    """
    # Raw resolved files, not validated models: listing stays free of pydantic and of every
    # backend's import; `profile validate` and `run` do the checking.
    from churnctl.profile_files import find_profile, resolve_raw, shipped_names

    profiles = [resolve_raw(find_profile(name)) for name in shipped_names()]

    def backend(raw: dict, kind: str) -> str:
        binding = raw.get("stages", {}).get(kind) if kind in STAGES else raw.get(kind)
        return binding.get("backend", "-") if isinstance(binding, dict) else "-"

    if json_out:
        print_json([{"name": p.get("name"), "description": p.get("description", ""),
                     "stages": {s: backend(p, s) for s in STAGES}} for p in profiles])
        return
    table = new_table(title="profiles")
    for column in ("name", *STAGES, "orchestrator", "tracking"):
        table.add_column(column)
    for p in profiles:
        orchestrator = backend(p, "orchestrator")
        table.add_row(str(p.get("name")), *(backend(p, s) for s in STAGES),
                      "local" if orchestrator == "-" else orchestrator, backend(p, "tracking"))
    console().print(table)


@app.command("show")
def show(name: NameArg, json_out: JsonOption = False) -> None:
    """Show a profile fully resolved (after `extends:`), as YAML or JSON.

    Example: churnctl profile show v2
    """
    import yaml

    from churnctl.profile import load_profile

    data = load_profile(name).model_dump(mode="json", exclude_none=True)
    if json_out:
        print_json(data)
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@app.command("diff")
def diff(a: NameArg, b: NameArg, json_out: JsonOption = False) -> None:
    """What changes per stage from profile A to B: backends, options, extras to install,
    and the services B's backends need (Redis for a Feast online store on Redis).

    Examples:

      churnctl profile diff v1 v2

      churnctl profile diff v2 v3 --json
    """
    from churnctl.profile import diff_profiles, load_profile
    from churnctl.registry import backend_class, describe

    left, right = load_profile(a), load_profile(b)
    rows = json.loads(_PASSWORD.sub(r"\1***", json.dumps(diff_profiles(left, right))))
    target = right.bindings()
    needed = []
    for row in rows:
        info = describe(row["binding"], row["to"]) if row["to"] else None
        row["extra"] = info.extra if info and row["from"] != row["to"] else None
        row["available"] = bool(info and info.installed)
        binding = target.get(row["binding"])
        found = (backend_class(row["binding"], binding.backend).services(binding.options)
                 if binding is not None and info is not None and info.implemented else [])
        row["services"] = [{"name": name, "why": why} for name, why in found]
        needed += [{"binding": row["binding"], **s} for s in row["services"]]
    if json_out:
        print_json({"from": left.name, "to": right.name, "changes": rows, "services": needed})
        return
    table = new_table(title=f"{left.name} -> {right.name}")
    for column in ("binding", "backend", "options changed", "needs"):
        table.add_column(column)
    for row in rows:
        same = row["from"] == row["to"]
        backend = (
            (row["to"] or "-")
            if same
            else f"[red]{row['from'] or '-'}[/] -> [green]{row['to'] or '-'}[/]"
        )
        options = ", ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in row["options"].items())
        if row["options_of_new_backend"] is not None:
            options = "with " + (", ".join(f"{k}={v!r}" for k, v in
                                           row["options_of_new_backend"].items()) or "defaults")
        needs = ""
        if row["extra"]:
            needs = f"pip install 'churnctl[{row['extra']}]'"
            if not row["available"]:
                needs += " (not available here)"
        needs = "; ".join([needs] * bool(needs) + [s["name"] for s in row["services"]])
        table.add_row(row["binding"], backend, escape(options), escape(needs))
    console().print(table)
    console().print(f"services {right.name} needs: " + (escape("; ".join(
        f"{s['name']} ({s['why']})" for s in needed)) or "none"))


@app.command("validate")
def validate(path: NameArg, json_out: JsonOption = False) -> None:
    """Check a profile file: structure, stage names, backends and their options.

    Every problem is listed, each with the file and key. Exit code 2 when any is found.

    Example: churnctl profile validate my-team.yaml
    """
    from churnctl.profile import load_profile

    profile = load_profile(path)
    if json_out:
        print_json({"valid": True, "name": profile.name, "source": profile.source})
    else:
        console().print(f"[green]valid[/]: {profile.source} (profile {profile.name})")


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of a profile file (for editors and CI linters).

    Example: churnctl profile schema > profile.schema.json
    """
    from churnctl.profile import Profile

    print_json(Profile.model_json_schema())


def _register_upgrade() -> None:
    # The command lives in its own module (the gates run pipelines); importing it costs only
    # typer, so `profile --help` stays light.
    from churnctl.cli.profile_upgrade import upgrade_command

    app.command("upgrade")(upgrade_command)


_register_upgrade()
