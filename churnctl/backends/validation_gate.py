"""The validation gate both validate backends share: report, then stop the run or pass.

The report goes into the artifact and also to reports/validation.json, because a failed
stage leaves no artifact and the user still needs to read why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from churnctl.atomic import write_json
from churnctl.errors import GateFailed
from churnctl.stages import StageContext, StageOutput


def apply_gate(ctx: StageContext, results: list[Any], rows: dict[str, int],
               source: Callable[[Any], str], fail_on_warning: bool) -> StageOutput:
    """Write the report; raise GateFailed naming the first failing check's file and column."""
    failed = [r for r in results
              if not r.passed and (r.severity == "error" or fail_on_warning)]
    report = {"passed": not failed, "checks": [r.to_dict() for r in results], "rows": rows}
    write_json(ctx.out_dir / "report.json", report)
    report_path = ctx.workspace.reports / "validation.json"
    write_json(report_path, report)
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more failing check(s))" if len(failed) > 1 else ""
        counted = f" [{first.failing_rows} row(s)]" if first.failing_rows else ""
        raise GateFailed(
            f"validation failed: {source(first)}: column {first.column}: {first.check}: "
            f"{first.detail}{counted}{more}; fix the data, report: {report_path}"
        )
    warnings = [f"{r.table}.{r.column}: {r.detail}" for r in results if not r.passed]
    for warning in warnings:
        ctx.log(f"warning: {warning}")
    return StageOutput(
        reports={"validation": "report.json"},
        metrics={"validation_checks_passed": sum(r.passed for r in results),
                 "validation_checks_total": len(results)},
        summary={"warnings": warnings},
    )
