"""`churnctl validate suite [--edit]`: what the Great Expectations gate checks.

Reads the workspace's `gx/expectations/churnctl_<table>.json` when a run wrote it (so
expectations a user added show up), otherwise the suite the contract would generate with
the profile's validate options. Imports no GX, except `--edit` to check the edited file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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

app = typer.Typer(help="The data quality gate (Great Expectations suites).",
                  no_args_is_help=True)
TABLES = ("users", "events")
CUSTOMERS = "customers"  # validate.gx-table's suite, shown once a `--data` run wrote it
GX_GATES = ("gx", "gx-spark")  # validate backends that run churnctl's GX suites


def _gate_options(profile: str | None, root: Any) -> Any:
    from churnctl.backends.validate_gx import GxValidatorOptions
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    binding = load_profile(resolve_profile_name(profile, root)).stages.get("validate")
    options = binding.options if binding is not None and binding.backend in GX_GATES else {}
    # gx-spark's own options (where Spark runs) do not shape the suite.
    return GxValidatorOptions.model_validate(
        {k: v for k, v in options.items() if k in GxValidatorOptions.model_fields})


def suite_rows(root: Path, options: Any) -> list[dict[str, Any]]:
    """One row per expectation: table, column, kind, severity, what it checks, who owns it."""
    from churnctl.domain.schema import TABLES as CONTRACT
    from churnctl.quality_gx.contract import (
        MARK,
        ExpectationSpec,
        event_data_specs,
        suite_name,
    )

    columns = {t: [c.name for c in CONTRACT[t] if not c.optional] for t in CONTRACT}
    generated = event_data_specs(columns, min_rows=options.min_rows,
                                 max_rows=options.max_rows)
    rows = []
    customers = root / "gx" / "expectations" / f"{suite_name(CUSTOMERS)}.json"
    for table in (*TABLES, *([CUSTOMERS] if customers.is_file() else [])):
        path = root / "gx" / "expectations" / f"{suite_name(table)}.json"
        if not path.is_file():
            rows += [{"table": table, "column": s.column, "kind": s.kind,
                      "severity": s.severity(options.severity), "expectation": s.describe(),
                      "owner": "churnctl", "suite": str(path)} for s in generated[table]]
            continue
        from churnctl.errors import DataError

        try:
            items = json.loads(path.read_text(encoding="utf-8"))["expectations"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a readable expectation suite ({exc}); fix it or "
                            "delete it to have churnctl regenerate it") from None
        for item in items:
            mark = (item.get("meta") or {}).get(MARK) or {}
            kwargs = item.get("kwargs", {})
            what = ExpectationSpec(str(item.get("type")), "", table, "", kwargs).describe()
            rows.append({"table": table,
                         "column": mark.get("column") or kwargs.get("column", "*"),
                         "kind": mark.get("kind", item.get("type")),
                         "severity": item.get("severity", "critical"),
                         "expectation": what,
                         "owner": "churnctl" if mark else "user", "suite": str(path)})
    return rows


@app.command("suite")
def suite(
    profile: ProfileOption = None,
    workspace: WorkspaceOption = ".",
    edit: Annotated[bool, typer.Option("--edit", help="Open the suite in $EDITOR, then "
                                       "check it; expectations you add are kept.")] = False,
    table: Annotated[str, typer.Option(help="Suite to edit: users, events or customers.")
                     ] = "events",
    json_out: JsonOption = False,
) -> None:
    """Show every expectation the validate gate checks (critical stops the run).

    Example: churnctl validate suite --profile v3
    """
    from churnctl.errors import UserError

    root = workspace_at(workspace)
    if edit:
        if table not in (*TABLES, CUSTOMERS):
            raise UserError(f"--table {table!r}: use one of {', '.join((*TABLES, CUSTOMERS))}")
        _edit(root.root, table)
    rows = suite_rows(root.root, _gate_options(profile, root))
    if json_out:
        print_json(rows)
        return
    view = new_table(title="data quality gate: Great Expectations suites")
    for column in ("table", "column", "kind", "severity", "expectation", "owner"):
        view.add_column(column, overflow="fold")
    for row in rows:
        style = "red" if row["severity"] == "critical" else "yellow"
        view.add_row(row["table"], row["column"], row["kind"],
                     f"[{style}]{row['severity']}[/]", escape(row["expectation"]), row["owner"])
    console().print(view)


def _edit(root: Path, table: str) -> None:
    from churnctl.errors import UserError
    from churnctl.quality_gx.contract import suite_name
    from churnctl.quality_gx.project import PROJECT_DIR, check_project_files, quiet_environment

    path = root / PROJECT_DIR / "expectations" / f"{suite_name(table)}.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist yet: run the validate stage with the gx "
                        "backend once (churnctl run --profile v3 --only ingest --only validate)")
    typer.edit(filename=str(path))
    quiet_environment()
    check_project_files(root / PROJECT_DIR)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="validate")
