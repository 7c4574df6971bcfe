"""Validate users + events with pandas rule checks; a failing check stops the run."""

from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator

from churnctl.backends.validation_gate import apply_gate
from churnctl.stages import Backend, StageContext, StageOutput, StrictOptions


class PandasValidatorOptions(StrictOptions):
    max_future_days: int = Field(
        1, ge=0, description="dates more than this many days past `as_of` are errors")
    earliest_date: str = "2000-01-01"
    # "Today" is an option, not the wall clock: the stage's result must depend only on its
    # cache key (options + input data), or a cached report could disagree with a fresh run.
    as_of: str | None = Field(
        None, description="ISO date taken as today for the future-date check "
        "(default: the date of the last event in the data)")
    fail_on_warning: bool = False

    @field_validator("as_of")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO date; use YYYY-MM-DD") from None
        return value


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
        users = pd.read_parquet(ingest.table("users"))
        events = pd.read_parquet(ingest.table("events"))
        results = check_tables(
            users,
            events,
            max_future_days=opts.max_future_days,
            earliest=pd.Timestamp(opts.earliest_date),
            as_of=pd.Timestamp(opts.as_of) if opts.as_of else None,
        )
        return apply_gate(
            ctx, results, {"users": len(users), "events": len(events)},
            source=lambda check: ingest.meta("sources", {}).get(check.table,
                                                                 f"{check.table} table"),
            fail_on_warning=opts.fail_on_warning,
        )
