"""Validate an ingested customer table; a failing check stops the run like the event-data gate."""

from __future__ import annotations

from pydantic import Field

from churnctl.backends.validation_gate import apply_gate
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

    def run(self, ctx: StageContext) -> StageOutput:
        import pandas as pd

        from churnctl.domain.table_quality import check_customer_table

        opts: TableValidatorOptions = ctx.options
        ingest = ctx.inputs["ingest"]
        profile = ingest.meta("table_profile")
        table = pd.read_parquet(ingest.table("customers"))
        results = check_customer_table(table, profile, min_class_rows=opts.min_class_rows,
                                       max_blank_share=opts.max_blank_share)
        return apply_gate(ctx, results, {"customers": len(table)},
                          source=lambda _check: profile["source"]["path"],
                          fail_on_warning=opts.fail_on_warning)
