"""The model report: one self-contained HTML file per run, its numbers in the run record.

`write_run_report` is what `churnctl run` calls after a run that trained and what
`churnctl report` calls for any past run. Plotly is imported only when a page is rendered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churnctl.workspace import Workspace

LATEST = "latest.html"
RUN_FIELDS = ("run_id", "started_at")  # what differs between runs of the same model


def write_run_report(workspace: Workspace, record: dict[str, Any],
                     out: Path | None = None) -> Path:
    """Write the run's report atomically and keep its numbers in the run record.

    Without `out`: `reports/<run_id>.html` and `reports/latest.html`. Returns the page's path.
    """
    from churnctl.atomic import write_text
    from churnctl.hashing import value_sha256
    from churnctl.report.collect import report_numbers
    from churnctl.runs import save_record

    numbers = report_numbers(workspace, record)
    path = out if out is not None else workspace.reports / f"{record['run_id']}.html"
    # The rendered page is cached by its content minus the run's identity, which is filled in
    # per run: a cached re-run does not pay for plotly again (~0.3-0.9 s).
    per_run = {key: numbers[key] for key in RUN_FIELDS if key in numbers}
    template_numbers = {**numbers, **{key: f"@@{key}@@" for key in per_run}}
    template = workspace.reports / ".pages" / f"{value_sha256(template_numbers)[:16]}.html"
    if not template.exists():
        from churnctl.report.html import render_html

        write_text(template, render_html(template_numbers))
    page = template.read_text(encoding="utf-8")
    for key, value in per_run.items():
        page = page.replace(f"@@{key}@@", str(value))
    for target in (path, *([workspace.reports / LATEST] if out is None else [])):
        write_text(target, page)
    shown = path.relative_to(workspace.root) if path.is_relative_to(workspace.root) else path
    record["report"] = {"html": str(shown), **numbers}
    save_record(workspace, record)
    return path


