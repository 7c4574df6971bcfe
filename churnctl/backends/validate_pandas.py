"""Validate users + events with pandas rule checks; a failing check stops the run."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from churnctl.backends.validation_gate import apply_gate
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
        return apply_gate(
            ctx, results, {"users": len(users), "events": len(events)},
            source=lambda check: _source_name(ingest.path, check.table),
            fail_on_warning=opts.fail_on_warning,
        )


def _source_name(ingest_dir: Path, table: str) -> str:
    sources = ingest_dir / "sources.json"
    if sources.exists():
        return json.loads(sources.read_text()).get(table, table)
    return f"{table} table"
