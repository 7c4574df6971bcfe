"""Validate users + events with pandas rule checks; a failing check stops the run."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from churnctl.atomic import write_json
from churnctl.errors import GateFailed
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions


class PandasValidatorOptions(StrictOptions):
    max_future_days: int = Field(1, ge=0, description="event dates this far past today are errors")
    earliest_date: str = "2000-01-01"
    fail_on_warning: bool = False


class PandasValidator(Backend):
    name = "pandas"
    stage = "validate"
    description = "schema, types, ranges, nulls, duplicates, unknown users, date range; JSON report"
    Options = PandasValidatorOptions
    extra = "pandas"
    modules = ("pandas",)
    code_modules = ("churnctl.domain.quality", "churnctl.domain.schema")

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.quality import check_tables

        opts: PandasValidatorOptions = ctx.options
        ingest = ctx.inputs["ingest"]
        users = pd.read_parquet(ingest.file("users.parquet"))
        events = pd.read_parquet(ingest.file("events.parquet"))
        results = check_tables(
            users,
            events,
            max_future_days=opts.max_future_days,
            earliest=pd.Timestamp(opts.earliest_date),
        )
        failed = [
            r for r in results if not r.passed and (r.severity == "error" or opts.fail_on_warning)
        ]
        report = {
            "passed": not failed,
            "checks": [r.to_dict() for r in results],
            "rows": {"users": len(users), "events": len(events)},
        }
        write_json(ctx.out_dir / "report.json", report)
        # The gate's report must outlive the failed stage, so it is also kept outside the artifact.
        report_path = ctx.workspace.reports / "validation.json"
        write_json(report_path, report)
        if failed:
            first = failed[0]
            source = _source_name(ingest.path, first.table)
            more = f" (+{len(failed) - 1} more failing check(s))" if len(failed) > 1 else ""
            raise GateFailed(
                f"validation failed: {source}: column {first.column}: {first.check}: "
                f"{first.detail} [{first.failing_rows} row(s)]{more}; fix the data, "
                f"report: {report_path}"
            )
        passed = sum(r.passed for r in results)
        return StageOutput(
            metrics={"validation_checks_passed": passed, "validation_checks_total": len(results)},
            summary={
                "warnings": [f"{r.table}.{r.column}: {r.detail}" for r in results if not r.passed]
            },
        )


def _source_name(ingest_dir: Path, table: str) -> str:
    sources = ingest_dir / "sources.json"
    if sources.exists():
        return json.loads(sources.read_text()).get(table, table)
    return f"{table} table"
