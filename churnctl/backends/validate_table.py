"""Validate an ingested customer table; a failing check stops the run like the event-data gate."""

from __future__ import annotations

import json

from pydantic import Field

from churnctl.atomic import write_json
from churnctl.errors import GateFailed
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions


class TableValidatorOptions(StrictOptions):
    min_class_rows: int = Field(20, ge=2, description="rows each class needs")
    max_blank_share: float = Field(0.5, gt=0, le=1, description="warn above this blank share")
    fail_on_warning: bool = False


class TableValidator(Backend):
    name = "table"
    stage = "validate"
    description = "customer table: two classes with enough rows, unique ids, blanks, duplicates"
    Options = TableValidatorOptions
    extra = "pandas"
    modules = ("pandas",)
    code_modules = ("churnctl.domain.table_quality", "churnctl.domain.quality")

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.table_quality import check_customer_table

        opts: TableValidatorOptions = ctx.options
        ingest = ctx.inputs["ingest"]
        profile = json.loads(ingest.file("table_profile.json").read_text())
        table = pd.read_parquet(ingest.file("table.parquet"))
        results = check_customer_table(table, profile, min_class_rows=opts.min_class_rows,
                                       max_blank_share=opts.max_blank_share)
        failed = [r for r in results if not r.passed and
                  (r.severity == "error" or opts.fail_on_warning)]
        report = {"passed": not failed, "checks": [r.to_dict() for r in results],
                  "rows": {"customers": len(table)}}
        write_json(ctx.out_dir / "report.json", report)
        # The gate's report must outlive the failed stage, so it is also kept outside the artifact.
        report_path = ctx.workspace.reports / "validation.json"
        write_json(report_path, report)
        if failed:
            first = failed[0]
            more = f" (+{len(failed) - 1} more failing check(s))" if len(failed) > 1 else ""
            raise GateFailed(
                f"validation failed: {profile['source']['path']}: column {first.column}: "
                f"{first.check}: {first.detail}{more}; fix the data, report: {report_path}")
        warnings = [f"{r.column}: {r.detail}" for r in results if not r.passed]
        for warning in warnings:
            ctx.log(f"warning: {warning}")
        return StageOutput(
            metrics={"validation_checks_passed": sum(r.passed for r in results),
                     "validation_checks_total": len(results)},
            summary={"warnings": warnings},
        )
