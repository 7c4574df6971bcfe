"""`churnctl scan`: Trivy, bandit, semgrep and pip-audit over a project, one merged result."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from churnctl.cli.common import ProfileOption, console, err_console, print_json, workspace_at
from churnctl.errors import UserError

# The profile's `scan:` binding (backend builtin) may set these; command-line flags win.
PROFILE_KEYS = ("fail_on", "ignore_file", "skip", "overlays", "tools", "trivy_db")


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Format(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"
    html = "html"


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)


def profile_options(profile: str | None, root: Path) -> dict[str, Any]:
    """The `scan:` options of the profile (flag, CHURNCTL_PROFILE, churnctl.yaml), or {}."""
    from churnctl.profile import load_profile
    from churnctl.settings import resolve_profile_name

    binding = getattr(load_profile(resolve_profile_name(profile, workspace_at(root))),
                      "scan", None)
    if binding is None:
        return {}
    if binding.backend != "builtin":
        raise UserError(f"scan backend {binding.backend!r}: use builtin")
    unknown = sorted(set(binding.options) - set(PROFILE_KEYS))
    if unknown:
        raise UserError(f"scan option(s) {', '.join(unknown)}: use {', '.join(PROFILE_KEYS)}")
    return dict(binding.options)


def scan(
    path: Annotated[Path, typer.Argument(help="Project directory to scan.")] = Path("."),
    image: Annotated[str | None, typer.Option("--image", help="Also scan an image by reference "
                                              "(needs its registry).")] = None,
    input_tar: Annotated[Path | None, typer.Option("--input", help="Also scan an image tar "
                                                   "(docker save / OCI layout).")] = None,
    fail_on: Annotated[Severity | None, typer.Option("--fail-on", case_sensitive=False,
                                                     help="Exit 1 at a finding of this "
                                                     "severity or above (default: the "
                                                     "profile's, else HIGH).")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="What to print.")] = Format.table,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, help="Write scan.json, "
                                             "scan.sarif, scan.html and sbom.cdx.json "
                                             "here.")] = None,
    trivy_db: Annotated[Path | None, typer.Option("--trivy-db", file_okay=False,
                                                  help="Trivy cache directory with "
                                                  "db/trivy.db: enables vulnerability "
                                                  "scanning.")] = None,
    ignore_file: Annotated[Path | None, typer.Option("--ignore-file", help="Reasoned ignores "
                                                     "(default PATH/scan-ignore.yaml).")] = None,
    overlay: Annotated[list[str] | None, typer.Option("--overlay", help="Kubernetes overlay "
                                                      "to render (default: all).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Directory under PATH not "
                                                   "to scan (repeatable).")] = None,
    tool: Annotated[list[str] | None, typer.Option("--tool", help="Run only this scanner "
                                                   "(trivy, bandit, semgrep, pip-audit).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Also exit 1 when a check could "
                                         "not run (no database, unreachable sources).")] = False,
    profile: ProfileOption = None,
) -> None:
    """Scan a project for security problems: infrastructure, secrets, code, dependencies.

    Trivy checks the rendered Kubernetes manifests of each overlay, Dockerfiles and Terraform,
    secrets and licenses (vulnerabilities only with --trivy-db); bandit and semgrep run the
    rules churnctl ships; pip-audit checks the installed packages. A check that could not run
    is reported as "not checked", never as a pass. Exit 1 when a finding reaches --fail-on,
    2 for bad input.

    Examples:

      churnctl scan

      churnctl scan . --fail-on MEDIUM --format sarif --out build/scan

      churnctl scan --input churn-api.tar --trivy-db ~/.cache/trivy
    """
    from churnctl.scan.core import TOOLS, run_scan
    from churnctl.scan.output import print_table, to_html
    from churnctl.scan.sarif import to_sarif

    quiet = fmt != Format.table
    bound = profile_options(profile, path) if path.is_dir() else {}
    bound_ignore = path / bound["ignore_file"] if bound.get("ignore_file") else None
    # A profile names the file every project may have; only a flag insists that it exists.
    ignore = ignore_file or (bound_ignore if bound_ignore and bound_ignore.is_file() else None)
    db = trivy_db or (Path(bound["trivy_db"]).expanduser() if bound.get("trivy_db") else None)
    result = run_scan(
        path, fail_on=fail_on.value if fail_on else str(bound.get("fail_on", "HIGH")),
        overlays=overlay or list(bound.get("overlays", [])), image=image, input_tar=input_tar,
        trivy_db=db, out_dir=out, ignore_file=ignore,
        skip=skip or list(bound.get("skip", [])),
        tools=tuple(tool or bound.get("tools") or TOOLS),
        progress=(lambda _: None) if quiet else
        (lambda name: err_console().print(f"[dim]scanning with {name}...[/]")),
    )
    for warning in result.warnings:
        err_console().print(f"[yellow]warning:[/] {warning}")
    data = result.as_dict()
    if out is not None:
        (out / "scan.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "scan.sarif").write_text(json.dumps(to_sarif(result.tools), indent=2) + "\n")
        (out / "scan.html").write_text(to_html(result))
    if fmt == Format.json:
        print_json(data)
    elif fmt == Format.sarif:
        print_json(to_sarif(result.tools))
    elif fmt == Format.html:
        typer.echo(to_html(result))
    else:
        print_table(result, console())
        if out is not None:
            console().print(f"wrote {out}/scan.json, scan.sarif, scan.html")
    if result.verdict == "fail" or (strict and result.verdict == "incomplete"):
        raise typer.Exit(1)
